"""What the codemod needs to know beyond the call itself: names, vocabulary, modules, contexts.

* **Vocabulary**: the new API accepts only catalog actions and resource types, so a legacy name
  (``EVENT_CREATED`` on ``event``, ``create`` on ``events``, ``FAILED_..._UNAUTHORIZED``) is
  mapped exactly as the legacy importer maps stored rows (one :class:`Vocabulary`); an action or
  type the catalog cannot place, or one computed at run time, is flagged, never copied blindly.
* **Webhook calls** (user ``'SYSTEM_WEBHOOK'``, agent ``'Stripe Webhook'``) have no request
  context: rewritten as they are they raise ``MissingAuditContextError``, usually inside the
  caller's ``except``, which silently loses the event again. They are rewritten only inside a
  ``with audit_context(...)`` block and flagged everywhere else.
* **Modules**: deprecated modules are named (``--old-module``), defaulted, or *discovered* by
  the signature of the function they define; relative imports are resolved against the file's
  package (found by walking ``__init__.py`` files).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from carelog.legacy.audit_import.mapping import Vocabulary
from carelog.legacy.codemod._signature import OLD_PARAMS

OLD_NAME = "log_audit_event"
NEW_MODULE = "carelog.audit"
#: Calls whose arguments are awaited later: a coroutine is wanted there, not the sync API.
ASYNC_TAKERS = frozenset(
    {"create_task", "gather", "ensure_future", "wait_for", "shield", "run_coroutine_threadsafe"}
)
#: Registering a function to be called later with the deprecated arguments.
BY_REFERENCE_TAKERS = frozenset({"add_task"})
WEBHOOK_MARKERS = frozenset({"SYSTEM_WEBHOOK", "Stripe Webhook"})
WEBHOOK_ACTOR = "system:stripe-webhook"


def default_vocabulary() -> Vocabulary:
    """The platform's catalog (the one the carelog service validates against)."""
    from carelog.platform.audit_catalog import LEGACY_RESOURCE_TYPES, build_catalog

    return Vocabulary(build_catalog(), LEGACY_RESOURCE_TYPES)


def string_value(expr: cst.BaseExpression) -> str | None:
    """The text of a plain string literal (no f-/b-prefix, no implicit concatenation)."""
    if isinstance(expr, cst.SimpleString) and not set(expr.prefix.lower()) & {"f", "b"}:
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None


def quoted(text: str, quote: str) -> cst.SimpleString:
    return cst.SimpleString(f"{quote}{text}{quote}")


def same_quotes(original: cst.SimpleString, text: str) -> cst.SimpleString:
    q = original.quote
    return cst.SimpleString(f"{original.prefix}{q}{text}{q}")


@dataclass(frozen=True)
class Mapped:
    action: str
    resource_type: str
    outcome: str | None  # None: success (the default, not written)


def map_names(
    vocabulary: Vocabulary, action: cst.BaseExpression, resource_type: cst.BaseExpression
) -> Mapped | str:
    """The catalog's names for a call's literal action and resource type, or why not."""
    legacy_action = string_value(action)
    legacy_type = string_value(resource_type)
    if legacy_action is None:
        return (
            "the action is computed at run time; the new API accepts only catalog actions: "
            "pass a catalog action name (see carelog.platform.audit_catalog) by hand"
        )
    if legacy_type is None:
        return (
            "the resource type is computed at run time; the new API accepts only catalog "
            "resource types: pass one by hand"
        )
    found = vocabulary.action(legacy_action, legacy_type)
    if found is None:
        return f"action {legacy_action!r} is not in the catalog and no legacy name maps to it"
    spec, outcome = found
    new_type = vocabulary.resource_type(legacy_type)
    if new_type is None:
        return f"resource type {legacy_type!r} is not in the catalog and no legacy name maps to it"
    return Mapped(spec.name, new_type, None if outcome == "success" else outcome)


def webhook_marker(values: Iterable[cst.BaseExpression]) -> str | None:
    for value in values:
        text = string_value(value)
        if text in WEBHOOK_MARKERS:
            return text
    return None


def is_audit_context(item: cst.WithItem) -> bool:
    call = item.item
    if not isinstance(call, cst.Call):
        return False
    func = call.func
    name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
    return name == "audit_context"


def taker_name(call: cst.Call) -> str | None:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


# --------------------------------------------------------------------------- modules


def module_name(path: Path) -> tuple[str, str]:
    """(module, package) of a file, walking up while the parent directory is a package."""
    path = path.resolve()
    parts = [] if path.stem == "__init__" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").exists():
        parts.insert(0, directory.name)
        directory = directory.parent
    module = ".".join(parts)
    package = module if path.stem == "__init__" else ".".join(parts[:-1])
    return module, package


def resolve_relative(name: str, package: str | None) -> str | None:
    """``..lib.audit.x`` in package ``app.api`` → ``app.lib.audit.x`` (None if unknown)."""
    level = len(name) - len(name.lstrip("."))
    if not level or not package:
        return None
    base = package.split(".")
    if level - 1 > len(base):
        return None
    base = base[: len(base) - (level - 1)]
    rest = name[level:]
    return ".".join([*base, rest] if rest else base)


def name_matches(name: str, modules: Sequence[str], package: str | None) -> bool:
    """Whether a qualified name (maybe relative) is ``<old module>.log_audit_event``."""
    targets = {f"{m}.{OLD_NAME}" for m in modules}
    if not name.startswith("."):
        return name in targets
    absolute = resolve_relative(name, package)
    if absolute is not None and absolute in targets:
        return True
    # The file's package is unknown or differs: match the written tail (".lib.audit.x").
    tail = name.lstrip(".")
    full = absolute or tail
    if full == f"{NEW_MODULE}.{OLD_NAME}":
        return False
    return any(full == t or full.endswith("." + t) or t.endswith("." + tail) for t in targets)


def discover_old_modules(files: Iterable[Path]) -> tuple[str, ...]:
    """Modules in ``files`` that define the deprecated eight-parameter ``log_audit_event``."""
    found: list[str] = []
    for file in files:
        try:
            tree = ast.parse(file.read_bytes(), filename=os.fspath(file))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in tree.body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == OLD_NAME
                and tuple(a.arg for a in node.args.args) == OLD_PARAMS
            ):
                module, _ = module_name(file)
                if module and module != NEW_MODULE and module not in found:
                    found.append(module)
    return tuple(found)


__all__ = [
    "ASYNC_TAKERS",
    "BY_REFERENCE_TAKERS",
    "NEW_MODULE",
    "OLD_NAME",
    "WEBHOOK_ACTOR",
    "Mapped",
    "default_vocabulary",
    "discover_old_modules",
    "is_audit_context",
    "map_names",
    "module_name",
    "name_matches",
    "quoted",
    "resolve_relative",
    "same_quotes",
    "string_value",
    "taker_name",
    "webhook_marker",
]
