"""Bind calls to the deprecated eight-parameter signature and judge whether dropping is safe.

The deprecated function is not importable here, so binding is re-implemented from its
known signature; anything that cannot be bound with certainty is rejected with a
human-readable reason instead of guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import libcst as cst

OLD_PARAMS = (
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "old_values",
    "new_values",
    "ip_address",
    "user_agent",
)
REQUIRED = frozenset(OLD_PARAMS[:4])
# The new API captures these from the request context, so they vanish from call sites.
DROPPED = ("user_id", "ip_address", "user_agent")
KEPT = ("action", "resource_type", "resource_id", "old_values", "new_values")

_LITERALS = (
    cst.Name,
    cst.Integer,
    cst.Float,
    cst.Imaginary,
    cst.SimpleString,
    cst.Ellipsis,
)


@dataclass(frozen=True)
class BoundCall:
    """Maps each supplied parameter to the index of its argument in ``call.args``."""

    index: dict[str, int]

    def source_order(self) -> list[str]:
        return sorted(self.index, key=self.index.__getitem__)


def bind(call: cst.Call) -> BoundCall | str:
    """Return the binding, or the reason Python would reject or we cannot follow the call."""
    index: dict[str, int] = {}
    positional = 0
    for i, arg in enumerate(call.args):
        if arg.star:
            return "uses *args/**kwargs; arguments cannot be mapped statically"
        if arg.keyword is None:
            if positional >= len(OLD_PARAMS):
                return f"too many positional arguments ({positional + 1} or more, at most 8)"
            name = OLD_PARAMS[positional]
            positional += 1
        else:
            name = arg.keyword.value
            if name not in OLD_PARAMS:
                return f"unknown keyword argument '{name}'"
        if name in index:
            return f"argument '{name}' given more than once"
        index[name] = i
    missing = [p for p in OLD_PARAMS if p in REQUIRED and p not in index]
    if missing:
        return "missing required argument(s): " + ", ".join(f"'{m}'" for m in missing)
    return BoundCall(index)


def is_inert(expr: cst.BaseExpression) -> bool:
    """True when evaluating ``expr`` cannot plausibly have side effects worth preserving."""
    if isinstance(expr, _LITERALS):
        return True
    if isinstance(expr, cst.ConcatenatedString):
        return is_inert(expr.left) and is_inert(expr.right)
    if isinstance(expr, cst.Attribute):
        return is_inert(expr.value)
    if isinstance(expr, cst.UnaryOperation):
        return isinstance(expr.operator, cst.Minus | cst.Plus) and isinstance(
            expr.expression, cst.Integer | cst.Float | cst.Imaginary
        )
    if isinstance(expr, cst.Subscript):
        return is_inert(expr.value) and all(_inert_slice(el.slice) for el in expr.slice)
    return False


def _inert_slice(part: cst.BaseSlice) -> bool:
    if isinstance(part, cst.Index):
        return part.star is None and is_inert(part.value)
    if isinstance(part, cst.Slice):
        return all(p is None or is_inert(p) for p in (part.lower, part.upper, part.step))
    return False


def is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def unsafe_reason(call: cst.Call, bound: BoundCall) -> str | None:
    """Explain why rewriting could change behaviour, or None when it cannot."""
    for name in DROPPED:
        if name in bound.index and not is_inert(call.args[bound.index[name]].value):
            return f"dropping '{name}' would discard an expression that may have side effects"
    # The rewritten call evaluates kept arguments in KEPT order; keyword calls may have
    # written them in another order, which only matters if both sides do real work.
    active = [
        name
        for name in bound.source_order()
        if name in KEPT and not is_inert(call.args[bound.index[name]].value)
    ]
    for first, second in pairwise(active):
        if KEPT.index(first) > KEPT.index(second):
            return f"arguments '{first}' and '{second}' would be evaluated in a different order"
    return None
