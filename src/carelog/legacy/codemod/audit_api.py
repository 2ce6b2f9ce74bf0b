"""Entry points for migrating callers of the deprecated audit helper.

``AuditApiCodemod`` plugs into ``python -m libcst.tool codemod``; ``rewrite_source`` and
``rewrite_paths`` exist so the carelog CLI and tests can run it without libcst's runner,
and so unparsable files become report lines instead of tracebacks.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.codemod import CodemodContext

from carelog.legacy.codemod._command import DEFAULT_OLD_MODULES, AuditApiCodemod

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


def _transform(
    source: str | bytes, path: str, old_modules: Sequence[str]
) -> tuple[cst.Module | None, int, tuple[str, ...]]:
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return None, 0, (_syntax_error(source, path, exc),)
    except (SyntaxError, UnicodeDecodeError) as exc:  # raised while detecting the encoding
        return None, 0, (f"{path}:1: cannot decode source: {exc}",)
    command = AuditApiCodemod(CodemodContext(filename=path), old_modules=old_modules)
    new_module = command.transform_module(module)
    reports = tuple(f"{path}:{s.line}: {s.reason}" for s in command.skipped)
    return new_module, command.rewritten, reports


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
    code: str, *, path: str = "<string>", old_modules: Sequence[str] = DEFAULT_OLD_MODULES
) -> RewriteResult:
    module, rewritten, reports = _transform(code, path, old_modules)
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
    paths: Sequence[Path], *, check: bool, old_modules: Sequence[str] = DEFAULT_OLD_MODULES
) -> Summary:
    """Rewrite files in place (or only count in ``check`` mode).

    Raises FileNotFoundError for a missing path before touching anything, so a typo
    cannot cause a half-applied migration.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(path)
    summary = Summary(check=check)
    for file in iter_python_files(paths):
        summary.files_scanned += 1
        try:
            source = file.read_bytes()
        except OSError as exc:
            summary.files_failed += 1
            summary.reports.append(f"{file}:1: cannot read file: {exc.strerror}")
            continue
        module, rewritten, reports = _transform(source, str(file), old_modules)
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
