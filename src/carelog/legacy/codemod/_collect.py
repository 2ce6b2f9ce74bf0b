"""What one pass over a module learns before the codemod decides anything.

Where each call sits matters: awaited or handed to ``asyncio.create_task``/``gather`` (a
coroutine is wanted), directly in an ``async def`` (the sync API would raise there), inside an
f-string (added literals must not reuse its quote before Python 3.12), inside
``with audit_context(...)`` (webhook calls have a context there); and every name or attribute
not in call position is kept, so a function passed by reference is never missed silently.
"""

from __future__ import annotations

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import BaseAssignment, ImportAssignment

from carelog.legacy.codemod._rules import ASYNC_TAKERS, OLD_NAME, is_audit_context, taker_name


class Collector(cst.CSTVisitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []
        self.awaited: set[cst.Call] = set()
        self.coroutine_wanted: set[cst.Call] = set()  # arguments of create_task/gather...
        self.quote: dict[cst.Call, str] = {}
        self.in_context: set[cst.Call] = set()  # inside ``with audit_context(...)``
        self.refs: list[cst.BaseExpression] = []  # names/attributes not in call position
        self._funcs: set[cst.BaseExpression] = set()
        self.in_async: set[cst.Call] = set()  # directly inside an ``async def``
        self._fstrings: list[str] = []
        self._contexts = 0
        self._functions: list[bool] = []  # is each enclosing function async?

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        self.calls.append(node)
        self._funcs.add(node.func)
        if self._fstrings:
            self.quote[node] = "'" if '"' in self._fstrings else '"'
        if self._contexts:
            self.in_context.add(node)
        if self._functions and self._functions[-1]:
            self.in_async.add(node)
        if taker_name(node) in ASYNC_TAKERS:
            for arg in node.args:
                if isinstance(arg.value, cst.Call):
                    self.coroutine_wanted.add(arg.value)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:  # noqa: N802
        self._functions.append(node.asynchronous is not None)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:  # noqa: N802
        self._functions.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:  # noqa: N802
        self._functions.append(False)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:  # noqa: N802
        self._functions.pop()

    def visit_Await(self, node: cst.Await) -> None:  # noqa: N802
        if isinstance(node.expression, cst.Call):
            self.awaited.add(node.expression)

    def visit_FormattedString(self, node: cst.FormattedString) -> None:  # noqa: N802
        self._fstrings.append(node.quote[0])

    def leave_FormattedString(self, original_node: cst.FormattedString) -> None:  # noqa: N802
        self._fstrings.pop()

    def visit_With(self, node: cst.With) -> None:  # noqa: N802
        if any(is_audit_context(item) for item in node.items):
            self._contexts += 1

    def leave_With(self, original_node: cst.With) -> None:  # noqa: N802
        if any(is_audit_context(item) for item in original_node.items):
            self._contexts -= 1

    def visit_Import(self, node: cst.Import) -> bool:  # noqa: N802
        return False  # names in imports are bindings, not uses

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:  # noqa: N802
        return False

    def visit_Name(self, node: cst.Name) -> None:  # noqa: N802
        if node not in self._funcs:
            self.refs.append(node)

    def visit_Attribute(self, node: cst.Attribute) -> None:  # noqa: N802
        if node.attr.value == OLD_NAME and node not in self._funcs:
            self.refs.append(node)


def imported_alias(assignment: BaseAssignment) -> tuple[str, str] | None:
    """(module, imported object) for ``from module import object [as name]`` bindings; a
    relative module keeps its leading dots."""
    if not isinstance(assignment, ImportAssignment):
        return None
    node = assignment.node
    if not isinstance(node, cst.ImportFrom):
        return None
    if isinstance(node.names, cst.ImportStar):
        return None
    dots = "." * len(node.relative)
    module = dots + (get_full_name_for_node(node.module) or "" if node.module else "")
    for alias in node.names:
        local = alias.evaluated_alias or alias.evaluated_name
        if local == assignment.name:
            return module, alias.evaluated_name
    return None


def new_import(names: list[tuple[str, str | None]]) -> cst.ImportFrom:
    aliases = [
        cst.ImportAlias(
            name=cst.Name(obj),
            asname=None if asname is None else cst.AsName(name=cst.Name(asname)),
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            if n < len(names) - 1
            else cst.MaybeSentinel.DEFAULT,
        )
        for n, (obj, asname) in enumerate(names)
    ]
    return cst.ImportFrom(
        module=cst.Attribute(cst.Name("carelog"), cst.Name("audit")), names=aliases
    )
