"""The libcst command that moves call sites from the deprecated audit helper to carelog.

All decisions are taken up front in ``visit_Module`` because whether a call may be
rewritten depends on the other calls in the file: a rewritten call may only reuse a
name once the deprecated import bound to that name is no longer needed elsewhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    Assignment,
    BaseAssignment,
    ImportAssignment,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
    ScopeProvider,
)

from carelog.legacy.codemod._layout import NewArg, rebuild_args
from carelog.legacy.codemod._signature import KEPT, BoundCall, bind, is_none, unsafe_reason

OLD_NAME = "log_audit_event"
NEW_MODULE = "carelog.audit"
NEW_ASYNC = "log_audit_event"
NEW_SYNC = "log_audit_event_sync"
DEFAULT_OLD_MODULES: tuple[str, ...] = (
    "audit",
    "utils.audit",
    "lib.audit",
    "app.audit",
    "app.utils.audit",
    "carelog_legacy.audit",
)


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


@dataclass(frozen=True)
class _Plan:
    call: cst.Call
    bound: BoundCall
    new_object: str  # which carelog.audit function the call must end up calling
    local_name: str  # the name the rewritten call uses
    via_module: bool  # ``m.log_audit_event(...)`` rather than an imported function


class _Collector(cst.CSTVisitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []
        self.awaited: set[cst.Call] = set()

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        self.calls.append(node)

    def visit_Await(self, node: cst.Await) -> None:  # noqa: N802
        if isinstance(node.expression, cst.Call):
            self.awaited.add(node.expression)


def _imported_alias(assignment: BaseAssignment) -> tuple[str, str] | None:
    """(module, imported object) for ``from module import object [as name]`` bindings."""
    if not isinstance(assignment, ImportAssignment):
        return None
    node = assignment.node
    if not isinstance(node, cst.ImportFrom) or node.relative or node.module is None:
        return None
    if isinstance(node.names, cst.ImportStar):
        return None
    module = get_full_name_for_node(node.module) or ""
    for alias in node.names:
        local = alias.evaluated_alias or alias.evaluated_name
        if local == assignment.name:
            return module, alias.evaluated_name
    return None


class AuditApiCodemod(VisitorBasedCodemodCommand):
    DESCRIPTION = (
        "Rewrite calls of the deprecated 8-argument log_audit_event to "
        "carelog.audit.log_audit_event / log_audit_event_sync."
    )
    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ScopeProvider)

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument(
            "--old-module",
            dest="old_modules",
            action="append",
            default=None,
            help="Deprecated module exporting log_audit_event (repeatable; replaces defaults).",
        )

    def __init__(self, context: CodemodContext, old_modules: Sequence[str] | None = None) -> None:
        super().__init__(context)
        self.old_modules = tuple(old_modules or DEFAULT_OLD_MODULES)
        self.skipped: list[Skipped] = []
        self.rewritten = 0
        self._plans: dict[cst.Call, _Plan] = {}
        self._drop_aliases: dict[cst.ImportFrom, set[str]] = {}

    # -- analysis -------------------------------------------------------------------

    def visit_Module(self, node: cst.Module) -> None:  # noqa: N802
        self.skipped, self.rewritten, self._plans, self._drop_aliases = [], 0, {}, {}
        collector = _Collector()
        node.visit(collector)
        plans = [
            plan
            for call in collector.calls
            if (plan := self._plan(call, call in collector.awaited)) is not None
        ]
        # AddImportsVisitor cannot emit one object both with and without an alias (it
        # sorts None against str), so an alias yields to the plain name when both occur.
        plain = {plan.new_object for plan in plans if plan.local_name == plan.new_object}
        plans = [
            replace(plan, local_name=plan.new_object) if plan.new_object in plain else plan
            for plan in plans
        ]
        plans = self._drop_conflicts(plans)
        for plan in plans:
            self._plans[plan.call] = plan
            asname = None if plan.local_name == plan.new_object else plan.local_name
            AddImportsVisitor.add_needed_import(self.context, NEW_MODULE, plan.new_object, asname)
            if plan.via_module:
                RemoveImportsVisitor.remove_unused_import_by_node(self.context, plan.call.func)
        consumed = {plan.call.func for plan in plans if not plan.via_module}
        for assignment in self._old_function_bindings(plans):
            if all(ref.node in consumed for ref in assignment.references):
                assert isinstance(assignment, ImportAssignment)
                node_ = assignment.node
                assert isinstance(node_, cst.ImportFrom)
                self._drop_aliases.setdefault(node_, set()).add(assignment.name)
        self.skipped.sort(key=lambda s: s.line)

    def _skip(self, node: cst.CSTNode, reason: str) -> None:
        line = self.get_metadata(PositionProvider, node).start.line
        self.skipped.append(Skipped(line, reason))
        self.warn(f"line {line}: {reason}")

    def _is_old(self, func: cst.BaseExpression) -> bool | None:
        """True/False for clear answers, None when the name is only sometimes deprecated."""
        targets = {f"{m}.{OLD_NAME}" for m in self.old_modules}
        names = self.get_metadata(QualifiedNameProvider, func, set())
        hits = {q for q in names if q.name in targets and q.source is QualifiedNameSource.IMPORT}
        if not hits:
            return False
        return True if hits == names else None

    def _plan(self, call: cst.Call, awaited: bool) -> _Plan | None:
        verdict = self._is_old(call.func)
        if verdict is False:
            return None
        if verdict is None:
            self._skip(call, "name may refer to something other than the deprecated function")
            return None
        bound = bind(call)
        if isinstance(bound, str):
            self._skip(call, bound)
            return None
        reason = unsafe_reason(call, bound)
        if reason is not None:
            self._skip(call, reason)
            return None
        via_module = not isinstance(call.func, cst.Name)
        new_object = NEW_ASYNC if awaited else NEW_SYNC
        local = new_object
        if awaited and isinstance(call.func, cst.Name):
            local = call.func.value  # keep the author's alias
        plan = _Plan(call, bound, new_object, local, via_module)
        built = self._build(plan, call)
        if isinstance(built, str):
            self._skip(call, built)
            return None
        return plan

    def _old_function_bindings(self, plans: Sequence[_Plan]) -> list[BaseAssignment]:
        seen: list[BaseAssignment] = []
        for plan in plans:
            if plan.via_module or not isinstance(plan.call.func, cst.Name):
                continue
            scope = self.get_metadata(ScopeProvider, plan.call)
            if scope is None:
                continue
            for assignment in scope[plan.call.func.value]:
                if assignment not in seen and self._is_old_binding(assignment):
                    seen.append(assignment)
        return seen

    def _is_old_binding(self, assignment: BaseAssignment) -> bool:
        return _imported_alias(assignment) in {(m, OLD_NAME) for m in self.old_modules}

    def _drop_conflicts(self, plans: list[_Plan]) -> list[_Plan]:
        """Skip calls whose new name would clash, until no clash remains."""
        while True:
            consumed = {plan.call.func for plan in plans if not plan.via_module}
            keep: list[_Plan] = []
            for plan in plans:
                reason = self._conflict(plan, consumed)
                if reason is None:
                    keep.append(plan)
                else:
                    self._skip(plan.call, reason)
            if len(keep) == len(plans):
                return keep
            plans = keep

    def _conflict(self, plan: _Plan, consumed: set[cst.BaseExpression]) -> str | None:
        scope = self.get_metadata(ScopeProvider, plan.call)
        if scope is None:
            return None
        name = plan.local_name
        for assignment in [*scope[name], *scope.globals[name]]:
            if _imported_alias(assignment) == (NEW_MODULE, plan.new_object):
                continue
            if self._is_old_binding(assignment):
                blocking = sorted(
                    {
                        self.get_metadata(PositionProvider, ref.node).start.line
                        for ref in assignment.references
                        if ref.node not in consumed
                    }
                )
                if not blocking:
                    continue
                where = ", ".join(map(str, blocking))
                return (
                    f"'{name}' must keep referring to the deprecated function, which is still "
                    f"used on line {where} in a way that cannot be rewritten; fix that first"
                )
            kind = "assigned" if isinstance(assignment, Assignment) else "bound"
            return f"'{name}' is already {kind} to something else here; rename it first"
        return None

    # -- transformation -------------------------------------------------------------

    def _build(self, plan: _Plan, call: cst.Call) -> cst.Call | str:
        index = plan.bound.index
        values = {name: call.args[i].value for name, i in index.items()}
        new = [NewArg(values[name], (index[name],)) for name in KEPT[:3]]
        old = values.get("old_values", cst.Name("None"))
        new_values = values.get("new_values", cst.Name("None"))
        if not (is_none(old) and is_none(new_values)):
            owners = tuple(sorted(index[n] for n in ("old_values", "new_values") if n in index))
            new.append(NewArg(_changes(old, new_values), owners))
        rebuilt = rebuild_args(call, new)
        if isinstance(rebuilt, str):
            return rebuilt
        return rebuilt.with_changes(func=cst.Name(plan.local_name))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:  # noqa: N802
        plan = self._plans.get(original_node)
        if plan is None:
            return updated_node
        built = self._build(plan, updated_node)
        if isinstance(built, str):  # pragma: no cover - layout was validated in visit_Module
            return updated_node
        self.rewritten += 1
        return built

    def leave_ImportFrom(  # noqa: N802
        self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom
    ) -> cst.ImportFrom | cst.RemovalSentinel:
        drop = self._drop_aliases.get(original_node)
        if not drop or isinstance(updated_node.names, cst.ImportStar):
            return updated_node
        names = list(updated_node.names)
        kept = [a for a in names if (a.evaluated_alias or a.evaluated_name) not in drop]
        if not kept:
            return cst.RemoveFromParent()
        if kept[-1] is not names[-1]:
            kept[-1] = kept[-1].with_changes(comma=names[-1].comma)
        return updated_node.with_changes(names=kept)


def _changes(old: cst.BaseExpression, new: cst.BaseExpression) -> cst.Dict:
    return cst.Dict(
        [
            cst.DictElement(
                cst.SimpleString('"old_values"'),
                old,
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
            ),
            cst.DictElement(cst.SimpleString('"new_values"'), new),
        ]
    )
