"""The libcst command that moves call sites from the deprecated audit helper to carelog.

All decisions are taken up front in ``visit_Module`` because whether a call may be
rewritten depends on the other calls in the file: a rewritten call may only reuse a
name once the deprecated import bound to that name is no longer needed elsewhere.

A call is rewritten only when the result is accepted by the new API: its action and resource
type are mapped through the catalog (``_rules.map_names``), the async API is used where a
coroutine is wanted (``await``, ``asyncio.create_task``/``gather``...), string literals it adds
never reuse the quote of an enclosing f-string (Python 3.11 forbids that), and webhook calls
are only rewritten inside ``audit_context``. Everything else is reported, including the
deprecated function passed by reference, so nothing is missed silently.
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

from carelog.legacy.audit_import.mapping import Vocabulary
from carelog.legacy.codemod._collect import Collector, imported_alias, new_import
from carelog.legacy.codemod._layout import NewArg, changes_dict, rebuild_args
from carelog.legacy.codemod._rules import (
    BY_REFERENCE_TAKERS,
    NEW_MODULE,
    OLD_NAME,
    WEBHOOK_ACTOR,
    Mapped,
    default_vocabulary,
    map_names,
    name_matches,
    quoted,
    same_quotes,
    taker_name,
    webhook_marker,
)
from carelog.legacy.codemod._signature import KEPT, BoundCall, bind, is_none, unsafe_reason

NEW_ASYNC = "log_audit_event"
FALLBACK_ASYNC = "carelog_log_audit_event"
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
    call: cst.Call  # the call that is replaced (for add_task: the add_task call)
    target: cst.Call  # the deprecated call's arguments (for add_task: a virtual call)
    ref: cst.BaseExpression  # the expression naming the deprecated function
    bound: BoundCall
    new_object: str  # which carelog.audit function the call must end up calling
    local_name: str  # the name the rewritten call uses
    via_module: bool  # ``m.log_audit_event(...)`` rather than an imported function
    mapped: Mapped
    quote: str  # quote for added string literals (never the enclosing f-string's)
    by_reference: bool = False


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

    def __init__(
        self,
        context: CodemodContext,
        old_modules: Sequence[str] | None = None,
        vocabulary: Vocabulary | None = None,
        package: str | None = None,
    ) -> None:
        super().__init__(context)
        self.old_modules = tuple(old_modules or DEFAULT_OLD_MODULES)
        self.vocabulary = vocabulary or default_vocabulary()
        self.package = package  # the file's package, for relative imports
        self.skipped: list[Skipped] = []
        self.rewritten = 0
        self._plans: dict[cst.Call, _Plan] = {}
        self._drop_aliases: dict[cst.ImportFrom, set[str]] = {}
        self._new_imports: list[tuple[str, str | None]] = []
        self._import_placed = False

    # -- analysis -------------------------------------------------------------------

    def visit_Module(self, node: cst.Module) -> None:  # noqa: N802
        self.skipped, self.rewritten, self._plans, self._drop_aliases = [], 0, {}, {}
        collector = Collector()
        node.visit(collector)
        self._star = self._star_imports(node)
        self._attempted: set[cst.BaseExpression] = set()  # references handled as add_task
        plans: list[_Plan] = []
        for call in collector.calls:
            plan = self._plan_reference(call) or self._plan(call, collector)
            if plan is not None:
                plans.append(plan)
        # AddImportsVisitor cannot emit one object both with and without an alias (it
        # sorts None against str), so an alias yields to the plain name when both occur.
        plain = {plan.new_object for plan in plans if plan.local_name == plan.new_object}
        plans = [
            replace(plan, local_name=plan.new_object) if plan.new_object in plain else plan
            for plan in plans
        ]
        plans = self._drop_conflicts(plans)
        imports: set[tuple[str, str | None]] = set()
        self._import_placed = False
        for plan in plans:
            self._plans[plan.call] = plan
            asname = None if plan.local_name == plan.new_object else plan.local_name
            if (plan.new_object, asname) not in imports:  # once per name (ruff F811)
                imports.add((plan.new_object, asname))
                AddImportsVisitor.add_needed_import(
                    self.context, NEW_MODULE, plan.new_object, asname
                )
            if plan.via_module:
                RemoveImportsVisitor.remove_unused_import_by_node(self.context, plan.ref)
        consumed = {plan.ref for plan in plans if not plan.via_module}
        for assignment in self._old_function_bindings(plans):
            if all(ref.node in consumed for ref in assignment.references):
                assert isinstance(assignment, ImportAssignment)
                node_ = assignment.node
                assert isinstance(node_, cst.ImportFrom)
                self._drop_aliases.setdefault(node_, set()).add(assignment.name)
        self._new_imports = sorted(imports, key=lambda i: (i[0], i[1] or ""))
        for ref in collector.refs:
            if ref in self._attempted or self._is_old(ref) is False:
                continue
            self._skip(
                ref,
                "the deprecated function is passed by reference here; pass "
                "carelog.audit.log_audit_event and adapt the arguments by hand",
            )
        self.skipped.sort(key=lambda s: s.line)

    def _skip(self, node: cst.CSTNode, reason: str) -> None:
        line = self.get_metadata(PositionProvider, node).start.line
        self.skipped.append(Skipped(line, reason))
        self.warn(f"line {line}: {reason}")

    @staticmethod
    def _star_imports(module: cst.Module) -> list[str]:
        """Modules imported with ``from m import *`` at the top level (relative: with dots)."""
        found: list[str] = []
        for stmt in module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar):
                    dots = "." * len(small.relative)
                    name = get_full_name_for_node(small.module) if small.module else ""
                    found.append(dots + (name or ""))
        return found

    def _module_is_old(self, module: str) -> bool:
        return name_matches(f"{module}.{OLD_NAME}", self.old_modules, self.package)

    def _is_old(self, func: cst.BaseExpression) -> bool | None:
        """True/False for clear answers, None when the name is only sometimes deprecated."""
        names = self.get_metadata(QualifiedNameProvider, func, set())
        hits = {
            q
            for q in names
            if q.source is QualifiedNameSource.IMPORT
            and name_matches(q.name, self.old_modules, self.package)
        }
        if not hits:
            if names or not isinstance(func, cst.Name) or func.value != OLD_NAME:
                return False
            # unbound name: provided by ``from <old module> import *``?
            return any(self._module_is_old(m) for m in self._star)
        return True if hits == names else None

    def _plan_reference(self, call: cst.Call) -> _Plan | None:
        """``tasks.add_task(log_audit_event, user, action, ...)``: the function and its
        arguments are passed separately; both are rewritten (to the async API, which
        background task runners await)."""
        if taker_name(call) not in BY_REFERENCE_TAKERS or not call.args:
            return None
        ref = call.args[0].value
        if call.args[0].keyword is not None or self._is_old(ref) is not True:
            return None
        self._attempted.add(ref)
        target = cst.Call(func=ref, args=call.args[1:])
        return self._checked(call, target, ref, NEW_ASYNC, '"', False, by_reference=True)

    def _plan(self, call: cst.Call, seen: Collector) -> _Plan | None:
        verdict = self._is_old(call.func)
        if verdict is False:
            return None
        if verdict is None:
            self._skip(call, "name may refer to something other than the deprecated function")
            return None
        coroutine = call in seen.awaited or call in seen.coroutine_wanted
        new_object = NEW_ASYNC if coroutine else NEW_SYNC
        quote = seen.quote.get(call, '"')
        unawaited = not coroutine and call in seen.in_async
        return self._checked(
            call, call, call.func, new_object, quote, call in seen.in_context, unawaited=unawaited
        )

    def _checked(
        self,
        call: cst.Call,
        target: cst.Call,
        ref: cst.BaseExpression,
        new_object: str,
        quote: str,
        in_context: bool,
        *,
        by_reference: bool = False,
        unawaited: bool = False,
    ) -> _Plan | None:
        bound = bind(target)
        if isinstance(bound, str):
            self._skip(call, bound)
            return None
        reason = unsafe_reason(target, bound)
        if reason is not None:
            self._skip(call, reason)
            return None
        if unawaited:
            # Neither awaited nor handed to a task: the sync API raises inside a coroutine,
            # and the async one would never run. Only the author knows which was meant.
            self._skip(
                call,
                "called without await inside an async def (the old call's coroutine never ran): "
                "add `await` (or asyncio.create_task) and rerun",
            )
            return None
        values = {name: target.args[i].value for name, i in bound.index.items()}
        dropped = ("user_id", "ip_address", "user_agent")
        marker = webhook_marker(values[n] for n in dropped if n in values)
        if marker is not None and not in_context:
            self._skip(
                call,
                f"webhook call ({marker!r}) has no request context, so the new API would raise "
                "MissingAuditContextError here: wrap it in "
                f'`with audit_context(actor_id="{WEBHOOK_ACTOR}", org_id=...)` and rerun',
            )
            return None
        mapped = map_names(self.vocabulary, values["action"], values["resource_type"])
        if isinstance(mapped, str):
            self._skip(call, mapped)
            return None
        via_module = not isinstance(ref, cst.Name)
        local = new_object
        if new_object == NEW_ASYNC and isinstance(ref, cst.Name):
            local = ref.value  # keep the author's alias
        plan = _Plan(
            call, target, ref, bound, new_object, local, via_module, mapped, quote, by_reference
        )
        built = self._build(plan, call)
        if isinstance(built, str):
            self._skip(call, built)
            return None
        return plan

    def _old_function_bindings(self, plans: Sequence[_Plan]) -> list[BaseAssignment]:
        seen: list[BaseAssignment] = []
        for plan in plans:
            if plan.via_module or not isinstance(plan.ref, cst.Name):
                continue
            scope = self.get_metadata(ScopeProvider, plan.call)
            if scope is None:
                continue
            for assignment in scope[plan.ref.value]:
                if assignment not in seen and self._is_old_binding(assignment):
                    seen.append(assignment)
        return seen

    def _is_old_binding(self, assignment: BaseAssignment) -> bool:
        alias = imported_alias(assignment)
        return alias is not None and alias[1] == OLD_NAME and self._module_is_old(alias[0])

    def _drop_conflicts(self, plans: list[_Plan]) -> list[_Plan]:
        """Skip calls whose new name would clash, until no clash remains."""
        while True:
            consumed = {plan.ref for plan in plans if not plan.via_module}
            keep: list[_Plan] = []
            for plan in plans:
                reason = self._conflict(plan, consumed)
                if reason is not None and plan.new_object == NEW_ASYNC:
                    # the old import must stay for a call left to the author: bind the new
                    # function under a name of its own instead of giving up on this call
                    renamed = replace(plan, local_name=FALLBACK_ASYNC)
                    if self._conflict(renamed, consumed) is None:
                        plan, reason = renamed, None
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
            if imported_alias(assignment) == (NEW_MODULE, plan.new_object):
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
        """The rewritten call; ``call`` is the (possibly updated) node of ``plan.call``."""
        target = cst.Call(func=plan.ref, args=call.args[1:]) if plan.by_reference else call
        index = plan.bound.index
        values = {name: target.args[i].value for name, i in index.items()}
        action, kind = values["action"], values["resource_type"]
        assert isinstance(action, cst.SimpleString)
        assert isinstance(kind, cst.SimpleString)
        values["action"] = same_quotes(action, plan.mapped.action)
        values["resource_type"] = same_quotes(kind, plan.mapped.resource_type)
        new = [NewArg(values[name], (index[name],)) for name in KEPT[:3]]
        old = values.get("old_values", cst.Name("None"))
        new_values = values.get("new_values", cst.Name("None"))
        if not (is_none(old) and is_none(new_values)):
            owners = tuple(sorted(index[n] for n in ("old_values", "new_values") if n in index))
            pairs = (("old_values", old), ("new_values", new_values))
            parts = [(n, v, index.get(n)) for n, v in pairs]
            changes, absorbed = changes_dict(target, parts, plan.quote)
            new.append(NewArg(changes, owners, absorbed=absorbed))
        if plan.mapped.outcome is not None:
            new.append(NewArg(quoted(plan.mapped.outcome, plan.quote), (), keyword="outcome"))
        rebuilt = rebuild_args(target, new)
        if isinstance(rebuilt, str):
            return rebuilt
        if plan.by_reference:
            first = call.args[0].with_changes(value=cst.Name(plan.local_name))
            return call.with_changes(args=[first, *rebuilt.args])
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
            if self._new_imports and not self._import_placed:
                # the new import takes the old one's place (and its blank lines and comments)
                self._import_placed = True
                return new_import(self._new_imports)
            return cst.RemoveFromParent()
        if kept[-1] is not names[-1]:
            kept[-1] = kept[-1].with_changes(comma=names[-1].comma)
        return updated_node.with_changes(names=kept)
