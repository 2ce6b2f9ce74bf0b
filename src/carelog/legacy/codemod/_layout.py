"""Rebuild an argument list while keeping the call's layout and every comment.

Whitespace is reused by position (so line breaks, indentation and a trailing comma stay
where the author put them) while comments travel with the argument they were written
next to; comments of dropped arguments become own-line comments so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

Whitespace = cst.BaseParenthesizableWhitespace


@dataclass(frozen=True)
class NewArg:
    """An argument of the rewritten call and the original arguments it replaces."""

    value: cst.BaseExpression
    owners: tuple[int, ...]
    keyword: str | None = None
    absorbed: frozenset[int] = frozenset()  # owners whose line comments ``value`` now holds


@dataclass
class _Slot:
    """Whitespace after an argument; ``main`` is the part that can hold a line break."""

    after_arg: Whitespace
    comma: cst.Comma | cst.MaybeSentinel = cst.MaybeSentinel.DEFAULT

    @property
    def main(self) -> Whitespace:
        return self.comma.whitespace_after if isinstance(self.comma, cst.Comma) else self.after_arg

    def set_main(self, ws: Whitespace) -> None:
        if isinstance(self.comma, cst.Comma):
            self.comma = self.comma.with_changes(whitespace_after=ws)
        else:
            self.after_arg = ws


@dataclass
class _Owned:
    """Comments that belong to one original argument."""

    line: cst.TrailingWhitespace | None = None
    own_lines: list[tuple[tuple[int, int], cst.EmptyLine]] = field(default_factory=list)


class _Comments(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.Comment] = []

    def visit_Comment(self, node: cst.Comment) -> None:  # noqa: N802
        self.found.append(node)


def _comments(node: cst.CSTNode | None) -> list[cst.Comment]:
    if node is None:
        return []
    collector = _Comments()
    node.visit(collector)
    return collector.found


def _strip(ws: Whitespace, *, keep_line: bool = False, keep_own: bool = False) -> Whitespace:
    if not isinstance(ws, cst.ParenthesizedWhitespace):
        return ws
    first = ws.first_line if keep_line else cst.TrailingWhitespace(newline=ws.first_line.newline)
    lines = ws.empty_lines if keep_own else [e for e in ws.empty_lines if e.comment is None]
    return ws.with_changes(first_line=first, empty_lines=lines)


def _slot_after(arg: cst.Arg, *, keep_own: bool = False) -> _Slot:
    comma = arg.comma
    if isinstance(comma, cst.Comma):
        comma = comma.with_changes(
            whitespace_before=_strip(comma.whitespace_before),
            whitespace_after=_strip(comma.whitespace_after, keep_own=keep_own),
        )
        return _Slot(_strip(arg.whitespace_after_arg), comma)
    return _Slot(_strip(arg.whitespace_after_arg, keep_own=keep_own), comma)


def _arg_indent(call: cst.Call) -> cst.SimpleWhitespace:
    before_args = [call.whitespace_before_args] + [
        _Slot(a.whitespace_after_arg, a.comma).main for a in call.args[:-1]
    ]
    for ws in before_args:
        if isinstance(ws, cst.ParenthesizedWhitespace):
            return ws.last_line
    return cst.SimpleWhitespace("    ")


def _own_line(comment: cst.Comment, indent: cst.SimpleWhitespace) -> cst.EmptyLine:
    return cst.EmptyLine(indent=True, whitespace=indent, comment=comment)


def _collect(call: cst.Call, dropped: set[int]) -> list[_Owned]:
    indent = _arg_indent(call)
    owned = [_Owned() for _ in call.args]
    previous: Whitespace = call.whitespace_before_args
    for i, arg in enumerate(call.args):
        info = owned[i]
        if isinstance(previous, cst.ParenthesizedWhitespace):
            info.own_lines += [((i, 0), e) for e in previous.empty_lines if e.comment]
        main = _Slot(arg.whitespace_after_arg, arg.comma).main
        if isinstance(main, cst.ParenthesizedWhitespace) and main.first_line.comment:
            info.line = main.first_line
        stray: list[cst.Comment] = _comments(
            arg.equal if isinstance(arg.equal, cst.CSTNode) else None
        )
        if isinstance(arg.comma, cst.Comma):
            stray += _comments(arg.whitespace_after_arg) + _comments(arg.comma.whitespace_before)
        if i in dropped:
            stray = _comments(arg.value) + stray
        info.own_lines += [((i, 1), _own_line(c, indent)) for c in stray]
        previous = main
    return owned


def rebuild_args(call: cst.Call, new: Sequence[NewArg]) -> cst.Call | str:
    """Return ``call`` with ``new`` as its arguments, or why comments could not be placed."""
    owners = {o for item in new for o in item.owners}
    dropped = set(range(len(call.args))) - owners
    owned = _collect(call, dropped)
    indent = _arg_indent(call)
    last = len(call.args) - 1

    opening = _Slot(_strip(call.whitespace_before_args, keep_line=True))
    slots = [opening] + [_slot_after(call.args[j]) for j in range(len(new) - 1)]
    slots.append(_slot_after(call.args[last], keep_own=True))

    leads: list[list[tuple[tuple[int, int], cst.EmptyLine]]] = [[] for _ in new]
    lines: list[list[cst.TrailingWhitespace]] = [[] for _ in new]
    tail: list[tuple[tuple[int, int], cst.EmptyLine]] = []
    for j, item in enumerate(new):
        for o in item.owners:
            leads[j] += owned[o].own_lines
            line = owned[o].line
            if line is not None and o not in item.absorbed:
                lines[j].append(line)
    for d in sorted(dropped):
        info = owned[d]
        moved = list(info.own_lines)
        if info.line is not None and info.line.comment is not None:
            moved.append(((d, 2), _own_line(info.line.comment, indent)))
        later = [
            (min(o for o in item.owners if o > d), j)
            for j, item in enumerate(new)
            if any(o > d for o in item.owners)
        ]
        if later:
            leads[min(later)[1]] += moved
        else:
            tail += moved

    for j in range(len(new)):
        extra_lines = lines[j][1:]
        leads[j] += [
            ((999, k), _own_line(tw.comment, indent))
            for k, tw in enumerate(extra_lines)
            if tw.comment
        ]
        if leads[j] and not _add_own_lines(
            slots[j], [e for _, e in sorted(leads[j], key=lambda p: p[0])], prepend=False
        ):
            return "cannot keep comments of this call in place; rewrite it by hand"
        if lines[j] and not _set_line(slots[j + 1], lines[j][0]):
            return "cannot keep comments of this call in place; rewrite it by hand"
    if tail and not _add_own_lines(
        slots[-1], [e for _, e in sorted(tail, key=lambda p: p[0])], prepend=True
    ):
        return "cannot keep comments of this call in place; rewrite it by hand"

    args = [
        cst.Arg(
            value=item.value,
            keyword=None if item.keyword is None else cst.Name(item.keyword),
            equal=(
                cst.MaybeSentinel.DEFAULT
                if item.keyword is None
                else cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
            ),
            comma=slots[j + 1].comma,
            whitespace_after_arg=slots[j + 1].after_arg,
        )
        for j, item in enumerate(new)
    ]
    return call.with_changes(args=args, whitespace_before_args=slots[0].main)


def _add_own_lines(slot: _Slot, extra: list[cst.EmptyLine], *, prepend: bool) -> bool:
    main = slot.main
    if not isinstance(main, cst.ParenthesizedWhitespace):
        return False
    lines = [*extra, *main.empty_lines] if prepend else [*main.empty_lines, *extra]
    slot.set_main(main.with_changes(empty_lines=lines))
    return True


def _set_line(slot: _Slot, line: cst.TrailingWhitespace) -> bool:
    main = slot.main
    if not isinstance(main, cst.ParenthesizedWhitespace):
        return False
    slot.set_main(main.with_changes(first_line=line))
    return True


def changes_dict(
    call: cst.Call, parts: Sequence[tuple[str, cst.BaseExpression, int | None]], quote: str
) -> tuple[cst.Dict, frozenset[int]]:
    """``{"old_values": ..., "new_values": ...}`` built from the call's arguments.

    When the merged arguments were on lines of their own and one of them carried an
    end-of-line comment, the dict is written one entry per line and each entry keeps its
    argument's comment, so comments stay on their lines (next to the value they describe).
    Returns the dict and the argument indices it absorbed.
    """
    mains = {
        i: _Slot(call.args[i].whitespace_after_arg, call.args[i].comma).main
        for _, _, i in parts
        if i is not None
    }
    ordered = [mains[i] for i in sorted(mains)]
    multiline = (
        len(ordered) > 1
        and all(isinstance(ws, cst.ParenthesizedWhitespace) for ws in ordered[:-1])
        and any(
            isinstance(ws, cst.ParenthesizedWhitespace) and ws.first_line.comment is not None
            for ws in ordered
        )
    )
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if not multiline:
        elements = [
            cst.DictElement(
                cst.SimpleString(f"{quote}{key}{quote}"),
                value,
                comma=comma if n < len(parts) - 1 else cst.MaybeSentinel.DEFAULT,
            )
            for n, (key, value, _) in enumerate(parts)
        ]
        return cst.Dict(elements), frozenset()
    indent = _arg_indent(call)
    inner = cst.SimpleWhitespace(indent.value + "    ")

    def newline(index: int | None, last: cst.SimpleWhitespace) -> cst.ParenthesizedWhitespace:
        ws = mains.get(index) if index is not None else None
        first = ws.first_line if isinstance(ws, cst.ParenthesizedWhitespace) else None
        return cst.ParenthesizedWhitespace(
            first_line=first if first is not None else cst.TrailingWhitespace(),
            indent=True,
            last_line=last,
        )

    elements = [
        cst.DictElement(
            cst.SimpleString(f"{quote}{key}{quote}"),
            value,
            comma=cst.Comma(
                whitespace_after=newline(index, inner if n < len(parts) - 1 else indent)
            ),
        )
        for n, (key, value, index) in enumerate(parts)
    ]
    opening = cst.LeftCurlyBrace(
        whitespace_after=cst.ParenthesizedWhitespace(
            first_line=cst.TrailingWhitespace(), indent=True, last_line=inner
        )
    )
    return cst.Dict(elements, lbrace=opening), frozenset(mains)
