"""The audit-api codemod against a small sample codebase and the CLI that wraps it."""

from __future__ import annotations

import shutil
from pathlib import Path

import libcst as cst
import pytest
from libcst.codemod import CodemodContext, TransformSuccess, transform_module
from typer.testing import CliRunner

from carelog.cli.codemod import app
from carelog.legacy.codemod import AuditApiCodemod, rewrite_paths, rewrite_source

FIXTURES = Path(__file__).parent / "fixtures" / "codemod"
BEFORE = FIXTURES / "before"
AFTER = FIXTURES / "after"
SAMPLES = sorted(p.name for p in BEFORE.glob("*.py"))
UNSAFE_REPORTS = {
    9: "dropping 'ip_address' would discard an expression that may have side effects",
    14: "uses *args/**kwargs; arguments cannot be mapped statically",
    18: "unknown keyword argument 'new_value'",
}

runner = CliRunner()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(BEFORE, root)
    return root


def test_fixture_sets_match() -> None:
    assert sorted(p.name for p in AFTER.glob("*.py")) == SAMPLES
    assert len(SAMPLES) >= 6


@pytest.mark.parametrize("name", SAMPLES)
def test_rewrites_match_expected(name: str) -> None:
    result = rewrite_source((BEFORE / name).read_text(), path=name)
    assert result.code == (AFTER / name).read_text()


@pytest.mark.parametrize("name", SAMPLES)
def test_rewriting_is_idempotent(name: str) -> None:
    expected = (AFTER / name).read_text()
    result = rewrite_source(expected, path=name)
    assert result.rewritten == 0
    assert result.code == expected


def test_unsafe_calls_are_reported_at_their_line() -> None:
    source = (BEFORE / "unsafe.py").read_text()
    result = rewrite_source(source, path="pkg/unsafe.py")
    assert result.reports == tuple(
        f"pkg/unsafe.py:{line}: {reason}" for line, reason in UNSAFE_REPORTS.items()
    )
    lines = source.splitlines()
    for line in UNSAFE_REPORTS:
        assert "log_audit_event(" in lines[line - 1]


def test_rewrite_paths_writes_the_expected_tree(sample: Path) -> None:
    (sample / "__pycache__").mkdir()
    (sample / "__pycache__" / "stale.py").write_text((BEFORE / "aliased.py").read_text())
    summary = rewrite_paths([sample], check=False)
    assert (summary.files_scanned, summary.files_changed) == (len(SAMPLES), 6)
    assert (summary.calls_rewritten, summary.calls_skipped) == (12, 3)
    for name in SAMPLES:
        assert (sample / name).read_text() == (AFTER / name).read_text(), name
    assert rewrite_paths([sample], check=True).files_changed == 0


def test_check_mode_writes_nothing(sample: Path) -> None:
    summary = rewrite_paths([sample], check=True)
    assert summary.files_changed == 6
    for name in SAMPLES:
        assert (sample / name).read_text() == (BEFORE / name).read_text()


def test_walk_skips_virtualenvs_hidden_dirs_and_caches(tmp_path: Path) -> None:
    legacy = (BEFORE / "sync_jobs.py").read_text()
    for folder in (".venv", ".git", "__pycache__", "env"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mod.py").write_text(legacy)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "mod.py").write_text(legacy)
    summary = rewrite_paths([tmp_path], check=True)
    assert summary.files_scanned == 1
    assert summary.changed_paths == [tmp_path / "src" / "mod.py"]


def test_invalid_python_is_a_report_line_not_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\ndef f(:\n    pass\n")
    summary = rewrite_paths([tmp_path], check=False)
    assert summary.files_failed == 1
    assert summary.reports == [f"{broken}:2: syntax error: invalid syntax"]


def test_cli_check_fails_on_pending_rewrites(sample: Path) -> None:
    result = runner.invoke(app, ["audit-api", str(sample), "--check"])
    assert result.exit_code == 1, result.output
    for line, reason in UNSAFE_REPORTS.items():
        assert f"{sample / 'unsafe.py'}:{line}: {reason}" in result.output
    assert "Files that would change" in result.output
    assert (sample / "aliased.py").read_text() == (BEFORE / "aliased.py").read_text()


def test_cli_check_fails_while_flagged_calls_remain_and_lists_them() -> None:
    result = runner.invoke(app, ["audit-api", str(AFTER), "--check"])
    assert result.exit_code == 1, result.output
    assert "not done: 3 call(s) flagged for manual migration" in result.output
    assert f"{AFTER / 'unsafe.py'}:15: uses *args/**kwargs" in result.output


def test_cli_check_passes_once_nothing_is_left(tmp_path: Path) -> None:
    shutil.copytree(AFTER, tmp_path / "done")
    (tmp_path / "done" / "unsafe.py").unlink()
    result = runner.invoke(app, ["audit-api", str(tmp_path / "done"), "--check"])
    assert result.exit_code == 0, result.output


def test_cli_rewrites_in_place(sample: Path) -> None:
    result = runner.invoke(app, ["audit-api", str(sample)])
    assert result.exit_code == 0, result.output
    assert (sample / "handlers_keywords.py").read_text() == (
        AFTER / "handlers_keywords.py"
    ).read_text()


def test_cli_missing_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = runner.invoke(app, ["audit-api", str(missing), "--check"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: no such file or directory: {missing}"


def test_cli_old_module_option_replaces_defaults(tmp_path: Path) -> None:
    target = tmp_path / "jobs.py"
    target.write_text(
        "from acme.auditing import log_audit_event\n"
        "from audit import log_audit_event as untouched\n\n"
        'log_audit_event(u, "EVENT_CREATED", "event", 1)\n'
        'untouched(u, "EVENT_CREATED", "event", 1)\n'
    )
    result = runner.invoke(app, ["audit-api", str(target), "--old-module", "acme.auditing"])
    assert result.exit_code == 0, result.output
    assert target.read_text() == (
        "from carelog.audit import log_audit_event_sync\n"
        "from audit import log_audit_event as untouched\n\n"
        'log_audit_event_sync("EVENT_TYPE_CREATED", "event_type", 1)\n'
        'untouched(u, "EVENT_CREATED", "event", 1)\n'
    )


def test_command_class_runs_under_libcst_transform_module() -> None:
    source = (BEFORE / "unsafe.py").read_text()
    command = AuditApiCodemod(CodemodContext(filename="unsafe.py"))
    result = transform_module(command, source)
    assert isinstance(result, TransformSuccess)
    assert result.code == (AFTER / "unsafe.py").read_text()
    assert [w.split(":")[0] for w in result.warning_messages] == [
        f"line {line}" for line in UNSAFE_REPORTS
    ]


def test_add_args_exposes_old_module() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    AuditApiCodemod.add_args(parser)
    args = parser.parse_args(["--old-module", "a.audit", "--old-module", "b.audit"])
    command = AuditApiCodemod(CodemodContext(), **vars(args))
    assert command.old_modules == ("a.audit", "b.audit")


# Behaviours the fixtures do not spell out: each would silently change semantics if wrong.


def _rewrite(code: str) -> tuple[str, list[str]]:
    result = rewrite_source(code, path="m.py")
    return result.code, [r.split(": ", 1)[1] for r in result.reports]


def test_name_still_needed_elsewhere_is_reported_and_the_new_function_gets_its_own_name() -> None:
    code = (
        "from audit import log_audit_event\n"
        "register(log_audit_event)\n"
        "async def f(u):\n"
        '    await log_audit_event(u, "EVENT_CREATED", "event", 1)\n'
        "def g(u):\n"
        '    log_audit_event(u, "EVENT_CREATED", "event", 1)\n'
    )
    new, reasons = _rewrite(code)
    assert new.startswith(
        "from audit import log_audit_event\nfrom carelog.audit import "
        "log_audit_event as carelog_log_audit_event, log_audit_event_sync\n"
    )
    assert '    await carelog_log_audit_event("EVENT_TYPE_CREATED", "event_type", 1)\n' in new
    assert '    log_audit_event_sync("EVENT_TYPE_CREATED", "event_type", 1)\n' in new
    assert reasons == [
        "the deprecated function is passed by reference here; pass "
        "carelog.audit.log_audit_event and adapt the arguments by hand",
    ]


def test_local_shadowing_blocks_rewrite() -> None:
    code = (
        "from audit import log_audit_event\n"
        "def f(u):\n"
        "    log_audit_event_sync = None\n"
        '    log_audit_event(u, "EVENT_CREATED", "event", 1)\n'
    )
    new, reasons = _rewrite(code)
    assert new == code
    assert reasons == [
        "'log_audit_event_sync' is already assigned to something else here; rename it first"
    ]


def test_reordered_keywords_with_side_effects_are_left_alone() -> None:
    code = (
        "from audit import log_audit_event\n"
        'log_audit_event(u, "EVENT_CREATED", "event", resource_id=new_id(), old_values=snapshot())\n'
        'log_audit_event(u, "EVENT_CREATED", "event", new_values=load(), old_values=snapshot(), resource_id=1)\n'
    )
    new, reasons = _rewrite(code)
    assert (
        'log_audit_event_sync("EVENT_TYPE_CREATED", "event_type", new_id(), {"old_values": snapshot(), '
        in new
    )
    assert reasons == [
        "arguments 'new_values' and 'old_values' would be evaluated in a different order"
    ]


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (
            'log_audit_event(u, "EVENT_CREATED", "event")',
            "missing required argument(s): 'resource_id'",
        ),
        ("log_audit_event(1, 2, 3, 4, 5, 6, 7, 8, 9)", "too many positional arguments"),
        (
            'log_audit_event(u, "EVENT_CREATED", "event", 1, action="x")',
            "argument 'action' given more than once",
        ),
        ('log_audit_event(u, "EVENT_CREATED", "event", 1, **extra)', "uses *args/**kwargs"),
        ('log_audit_event(audit_user(), "a", "t", 1)', "dropping 'user_id'"),
        (
            'log_audit_event(u, "EVENT_CREATED", "event", 1, user_agent=await ua())',
            "dropping 'user_agent'",
        ),
        (
            'log_audit_event(u, "EVENT_CREATED", "event", 1, ip_address=ips[pick()])',
            "dropping 'ip_address'",
        ),
    ],
)
def test_calls_that_cannot_be_rewritten(call: str, reason: str) -> None:
    code = f"from audit import log_audit_event\nasync def f():\n    {call}\n"
    new, reasons = _rewrite(code)
    assert new == code
    assert len(reasons) == 1
    assert reasons[0].startswith(reason)


def test_inert_dropped_arguments_are_removed() -> None:
    code = (
        "from audit import log_audit_event\n"
        'log_audit_event(req.user.id, "EVENT_CREATED", "event", 1, ip_address=req.h["ip"][0], user_agent=-1)\n'
    )
    new, reasons = _rewrite(code)
    assert reasons == []
    assert new.endswith('log_audit_event_sync("EVENT_TYPE_CREATED", "event_type", 1)\n')


def test_result_is_valid_python_for_every_sample() -> None:
    for name in SAMPLES:
        cst.parse_module((AFTER / name).read_text())
        compile((AFTER / name).read_text(), name, "exec")
