"""Entry points for migrating callers of the deprecated audit helper.

``AuditApiCodemod`` plugs into ``python -m libcst.tool codemod``; ``rewrite_source`` and
``rewrite_paths`` exist so the carelog CLI and tests can run it without libcst's runner,
and so unparsable files become report lines instead of tracebacks.

``rewrite_paths`` also *discovers* deprecated modules under the given paths (any module that
defines the eight-parameter ``log_audit_event``), so a project's own package path needs no
``--old-module``, and resolves relative imports against each file's package. A rewritten file
must still parse as Python 3.11 (carelog's oldest supported version); if it would not, the file
is left as it was and reported.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.codemod import CodemodContext

from carelog.legacy.audit_import.mapping import Vocabulary
from carelog.legacy.codemod._command import DEFAULT_OLD_MODULES, AuditApiCodemod
from carelog.legacy.codemod._rules import default_vocabulary, discover_old_modules, module_name

#: The oldest Python carelog supports: rewritten code must parse there.
TARGET_VERSION = (3, 11)

__all__ = [
    "DEFAULT_OLD_MODULES",
    "AuditApiCodemod",
    "RewriteResult",
    "Summary",
    "rewrite_paths",
    "rewrite_source",
]


@dataclass(frozen=True)
class RewriteResult:
    code: str
    rewritten: int
    reports: tuple[str, ...]
    failed: bool = False  # the source could not be parsed, so nothing was attempted

    @property
    def skipped(self) -> int:
        return 0 if self.failed else len(self.reports)


@dataclass
class Summary:
    check: bool
    files_scanned: int = 0
    files_changed: int = 0  # in check mode: files that would change
    calls_rewritten: int = 0  # in check mode: calls that would be rewritten
    calls_skipped: int = 0
    files_failed: int = 0
    changed_paths: list[Path] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    discovered: tuple[str, ...] = ()  # deprecated modules found under the paths

    @property
    def left(self) -> int:
        """Calls still to migrate by hand plus files that could not be handled."""
        return self.calls_skipped + self.files_failed

    def done(self) -> bool:
        """Nothing left to do: nothing would change and nothing is flagged or unparsable."""
        return not self.left and not (self.check and self.files_changed)


def _transform(
    source: str | bytes,
    path: str,
    old_modules: Sequence[str],
    vocabulary: Vocabulary | None = None,
    package: str | None = None,
) -> tuple[cst.Module | None, int, tuple[str, ...]]:
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return None, 0, (_syntax_error(source, path, exc),)
    except (SyntaxError, UnicodeDecodeError) as exc:  # raised while detecting the encoding
        return None, 0, (f"{path}:1: cannot decode source: {exc}",)
    command = AuditApiCodemod(
        CodemodContext(filename=path),
        old_modules=old_modules,
        vocabulary=vocabulary,
        package=package,
    )
    new_module = _keep_docstring_gap(module, command.transform_module(module))
    reports = tuple(f"{path}:{s.line}: {s.reason}" for s in command.skipped)
    if command.rewritten:
        problem = _unparsable_on_target(new_module.code)
        if problem is not None:
            line, why = problem
            report = f"{path}:{line}: the rewrite would not parse on Python 3.11 ({why})"
            return module, 0, (*reports, f"{report}; file left unchanged")
    return new_module, command.rewritten, reports


def _keep_docstring_gap(old: cst.Module, new: cst.Module) -> cst.Module:
    """Keep the blank line between the docstring and the imports when the first import was
    removed (its leading blank line went with it)."""
    if len(old.body) < 2 or len(new.body) < 2 or not _is_docstring(new.body[0]):
        return new
    first = new.body[1]
    if first is old.body[1] or first.leading_lines or not old.body[1].leading_lines:
        return new
    fixed = first.with_changes(leading_lines=old.body[1].leading_lines)
    return new.with_changes(body=[new.body[0], fixed, *new.body[2:]])


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def _unparsable_on_target(code: str) -> tuple[int, str] | None:
    try:
        ast.parse(code, feature_version=TARGET_VERSION)
    except SyntaxError as exc:
        return exc.lineno or 1, exc.msg
    return None


def _syntax_error(source: str | bytes, path: str, exc: cst.ParserSyntaxError) -> str:
    """Prefer CPython's wording and position; libcst's are harder to act on."""
    try:
        compile(source, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as py_exc:
        return f"{path}:{py_exc.lineno or 1}: syntax error: {py_exc.msg}"
    except ValueError:  # e.g. NUL bytes
        pass
    message = str(exc.message).strip().splitlines()[0]
    return f"{path}:{exc.raw_line}: syntax error: {message}"


def rewrite_source(
    code: str,
    *,
    path: str = "<string>",
    old_modules: Sequence[str] = DEFAULT_OLD_MODULES,
    vocabulary: Vocabulary | None = None,
    package: str | None = None,
) -> RewriteResult:
    module, rewritten, reports = _transform(code, path, old_modules, vocabulary, package)
    if module is None:
        return RewriteResult(code, 0, reports, failed=True)
    return RewriteResult(module.code if rewritten else code, rewritten, reports)


def _is_skipped_dir(directory: Path) -> bool:
    name = directory.name
    return (
        name.startswith(".")
        or name == "__pycache__"
        or (directory / "pyvenv.cfg").exists()  # any virtualenv, whatever it is called
    )


def iter_python_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Yield files in a stable order; explicitly named files are taken as given."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _is_skipped_dir(Path(root, d)))
            yield from (Path(root, f) for f in sorted(files) if f.endswith(".py"))


def rewrite_paths(
    paths: Sequence[Path],
    *,
    check: bool,
    old_modules: Sequence[str] = DEFAULT_OLD_MODULES,
    discover: bool = True,
    vocabulary: Vocabulary | None = None,
) -> Summary:
    """Rewrite files in place (or only count in ``check`` mode).

    Raises FileNotFoundError for a missing path before touching anything, so a typo
    cannot cause a half-applied migration.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(path)
    vocabulary = vocabulary or default_vocabulary()
    files = list(iter_python_files(paths))
    found = discover_old_modules(files) if discover else ()
    modules = (*old_modules, *(m for m in found if m not in old_modules))
    summary = Summary(check=check, discovered=found)
    for file in files:
        summary.files_scanned += 1
        try:
            source = file.read_bytes()
        except OSError as exc:
            summary.files_failed += 1
            summary.reports.append(f"{file}:1: cannot read file: {exc.strerror}")
            continue
        _, package = module_name(file)
        module, rewritten, reports = _transform(source, str(file), modules, vocabulary, package)
        summary.reports.extend(reports)
        if module is None:
            summary.files_failed += 1
            continue
        summary.calls_skipped += len(reports)
        if not rewritten:
            continue
        summary.calls_rewritten += rewritten
        summary.files_changed += 1
        summary.changed_paths.append(file)
        if not check:
            file.write_bytes(module.bytes)
    return summary
