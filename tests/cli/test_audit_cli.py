"""`carelog audit …` against a real database, as an org owner through the app role."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from carelog.audit.errors import AuditInputError
from carelog.cli.audit_commands import app
from carelog.core.errors import CarelogError
from carelog.db.engine import Database
from world import World, build_world

N = 120  # events inserted for org A (plus the world's own one)


@pytest.fixture
def world(fresh_db: Database) -> World:
    w = build_world(fresh_db.sync_engine("admin"))
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action,
                    resource_type, resource_id, outcome, data_subject_id, ip_address, user_agent,
                    created_at)
                SELECT gen_random_uuid(), :org, 'actor' || (g % 3), 'user',
                    (ARRAY['MEDICAL_RECORD_VIEWED','PROFILE_UPDATED'])[1 + g % 2],
                    'medical_record', 'rec' || (g % 5),
                    (ARRAY['success','denied','failure'])[1 + g % 3],
                    CASE WHEN g % 4 = 0 THEN 'pat' || (g % 8) END,
                    '10.1.2.3', 'cli-test',
                    timestamptz '2024-06-01 00:00+00' + make_interval(hours => g)
                FROM generate_series(1, :n) AS g
                """
            ),
            {"org": w.a.org_id, "n": N},
        )
    return w


@pytest.fixture
def invoke(fresh_db: Database, tmp_path: Path) -> object:
    env = {
        "CARELOG_DATABASE_URL": fresh_db.admin_url.render_as_string(hide_password=False),
        "CARELOG_ROLE_PREFIX": fresh_db.settings.roles.owner.removesuffix("_owner"),
        "CARELOG_ENV": "test",
        "CARELOG_DATA_DIR": str(tmp_path / "data"),
        "CARELOG_AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
    }
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(app, list(args), env=env, catch_exceptions=True)

    return run


def scope(world: World, user: str | None = None) -> list[str]:
    return ["--org", str(world.a.org_id), "--as", user or world.a.owner]


def count_line(output: str, noun: str) -> int:
    match = re.search(rf"(\d+) {noun}", output)
    assert match, output
    return int(match.group(1))


def test_query_pages_with_the_printed_cursor(world: World, invoke) -> None:
    first = invoke("query", *scope(world), "--limit", "100")
    assert first.exit_code == 0, first.output
    assert count_line(first.output, r"event\(s\)") == 100
    cursor = re.search(r"--cursor (\S+)", first.output).group(1)
    second = invoke("query", *scope(world), "--limit", "100", "--cursor", cursor)
    assert second.exit_code == 0, second.output
    assert count_line(second.output, r"event\(s\)") == N + 1 - 100
    assert "--cursor" not in second.output


def test_query_filters_combine(world: World, invoke) -> None:
    result = invoke(
        "query",
        *scope(world),
        "--action",
        "MEDICAL_RECORD_VIEWED",
        "--outcome",
        "denied",
        "--actor",
        "actor1",
        "--since",
        "2024-06-02",
        "--until",
        "2024-06-05T00:00:00+00:00",
        "--limit",
        "1000",
    )
    assert result.exit_code == 0, result.output
    # g in (24, 96]: odd g (viewed), g % 3 == 1 (denied and actor1 alike) -> g = 6k+1
    expected = len([g for g in range(25, 96) if g % 2 == 1 and g % 3 == 1])
    assert count_line(result.output, r"event\(s\)") == expected


def test_a_member_sees_an_empty_log(world: World, invoke) -> None:
    result = invoke("query", *scope(world, world.a.member))
    assert result.exit_code == 0, result.output
    assert count_line(result.output, r"event\(s\)") == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "workos"])
def test_export_to_a_file_is_recorded(
    fresh_db: Database, world: World, invoke, tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"out.{fmt}"
    result = invoke(
        "export",
        *scope(world),
        "--format",
        fmt,
        "--output",
        str(target),
        "--reason",
        "auditor request",
        "--outcome",
        "denied",
    )
    assert result.exit_code == 0, result.output
    expected = N // 3
    text = target.read_text()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        rows = json.loads(text)
    assert len(rows) == expected
    with fresh_db.sync_engine("admin").connect() as conn:
        record = conn.execute(
            sa.text("select * from audit_log_exports where org_id = :o and reason is not null"),
            {"o": world.a.org_id},
        ).one()
        events = (
            conn.execute(
                sa.text("select metadata from audit_logs where action = 'AUDIT_LOG_EXPORTED'")
            )
            .scalars()
            .all()
        )
    assert (record.status, record.row_count, record.format) == ("completed", expected, fmt)
    assert record.filters == {"outcomes": ["denied"]}
    assert [e["row_count"] for e in events] == [expected]


def test_export_to_stdout(world: World, invoke) -> None:
    result = invoke("export", *scope(world), "--format", "jsonl", "--actor", "actor0")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == N // 3
    assert all(json.loads(line)["workos_user_id"] == "actor0" for line in lines)


def test_report_and_access_report(world: World, invoke) -> None:
    report = invoke("report", *scope(world), "--since", "2024-06-01", "--until", "2024-07-01")
    assert report.exit_code == 0, report.output
    assert "PHI accesses" in report.output and "denied attempts" in report.output
    assert re.search(rf"events\s*│\s*{N}\b", report.output), report.output
    access = invoke("access-report", *scope(world), "--subject", "pat4")
    assert access.exit_code == 0, access.output
    expected = len([g for g in range(1, N + 1) if g % 4 == 0 and g % 8 == 4])
    assert count_line(access.output, r"access\(es\)") == expected


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["query", "--since", "yesterday"], "since"),
        (["query", "--since", "2024-02-01", "--until", "2024-01-01"], "start"),
        (["query", "--outcome", "maybe"], "outcomes"),
        (["query", "--limit", "0"], "limit"),
        (["query", "--cursor", "garbage"], "cursor"),
        (["export", "--format", "xml"], "format"),
    ],
)
def test_bad_input_is_a_carelog_error(world: World, invoke, args: list[str], field: str) -> None:
    result = invoke(args[0], *scope(world), *args[1:])
    assert isinstance(result.exception, AuditInputError), result.output
    assert result.exception.field == field


def test_bad_org_is_a_carelog_error(world: World, invoke) -> None:
    result = invoke("query", "--org", "not-a-uuid", "--as", world.a.owner)
    assert isinstance(result.exception, CarelogError)
    assert result.exception.field == "org_id"


def test_reading_the_trail_from_the_cli_is_itself_recorded(
    world: World, invoke, fresh_db: Database
) -> None:
    """Who looked at the trail is part of the trail, whichever surface they used: the CLI's
    query, report and access report leave the same events as the API's, attributed to --as."""
    assert invoke("query", *scope(world), "--limit", "10").exit_code == 0
    assert invoke("report", *scope(world), "--since", "2024-06-01", "--until", "2024-07-01")
    assert invoke("access-report", *scope(world), "--subject", "pat4").exit_code == 0
    with fresh_db.sync_engine("admin").connect() as conn:
        rows = conn.execute(
            sa.text(
                "select action, workos_user_id, data_subject_id, metadata from audit_logs"
                " where org_id = :o and action in ('AUDIT_LOG_QUERIED',"
                " 'COMPLIANCE_REPORT_GENERATED') order by created_at, id"
            ),
            {"o": world.a.org_id},
        ).all()
    assert [(r.action, r.metadata.get("kind")) for r in rows] == [
        ("AUDIT_LOG_QUERIED", None),
        ("COMPLIANCE_REPORT_GENERATED", "compliance"),
        ("COMPLIANCE_REPORT_GENERATED", "access"),
    ]
    assert {r.workos_user_id for r in rows} == {world.a.owner}
    assert rows[0].metadata["returned"] == 10 and rows[0].metadata["via"] == "cli"
    assert rows[2].data_subject_id == "pat4"
