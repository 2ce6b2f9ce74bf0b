"""Audit log streams against the real NATS server (127.0.0.1:4222) and a local HTTP receiver.

Every committed event arrives in stream order with its stable id; a runner killed mid-batch
re-sends (receivers deduplicate by id) and loses nothing; outages of either destination are
retried with backoff and caught up; a down destination costs the primary log nothing; a late
committing transaction's event is delivered, not skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from audit_env import AuditEnv
from sqlalchemy.exc import DBAPIError

from carelog.audit import audit_context, log_audit_event
from carelog.audit.streams import StreamRunner, parse_destination, stream_status
from carelog.audit.streams.base import backoff_delay
from carelog.audit.streams.config import Destination, destinations_from_settings
from carelog.audit.streams.nats_sink import NatsSink
from carelog.audit.streams.reader import START, read_batch
from carelog.audit.streams.webhook_sink import (
    EVENT_IDS_HEADER,
    SIGNATURE_HEADER,
    WebhookSink,
    sign,
    verify_signature,
)
from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings

NATS_HOST, NATS_PORT = "127.0.0.1", 4222
SECRET = "test-secret-" + secrets.token_hex(8)
FAST = {"idle_interval": 0.05, "retry_base": 0.05, "retry_cap": 0.3, "lag_interval": 0.1}


# --------------------------------------------------------------------------- helpers


async def log_events(env: AuditEnv, n: int, *, start: int = 0) -> list[uuid.UUID]:
    """n committed events, alternating between the two organizations."""
    ids = []
    for i in range(start, start + n):
        tenant = env.world.a if i % 2 == 0 else env.world.b
        with audit_context(actor_id=tenant.expert, org_id=tenant.org_id):
            event = await log_audit_event("PROFILE_VIEWED", "profile", f"p{i}")
        ids.append(event.id)
    return ids


def stream_order(env: AuditEnv) -> list[uuid.UUID]:
    with env.db.sync_engine("admin").connect() as conn:
        return list(
            conn.execute(sa.text("select id from audit_logs order by txid, created_at, id"))
            .scalars()
            .all()
        )


async def wait_until(check: Callable[[], bool | Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dedup(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


class Receiver:
    """A webhook receiver on 127.0.0.1 (http.server in a thread); status and delay settable."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.status = 200
        self.delay = 0.0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.bad_signatures = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = verify_signature(SECRET.encode(), headers[SIGNATURE_HEADER.lower()], body)
                status = receiver.status
                with receiver._lock:
                    if not ok:
                        receiver.bad_signatures += 1
                    elif status < 300:
                        receiver.requests.append((headers, body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def event_ids(self) -> list[str]:
        with self._lock:
            return [e["id"] for _, body in self.requests for e in json.loads(body)["events"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


def webhook_runner(env: AuditEnv, url: str, **kwargs: Any) -> StreamRunner:
    dest = parse_destination(url, webhook_secret=SECRET)
    sink = WebhookSink(dest, attempts=2, base_delay=0.02, max_delay=0.1, timeout=5.0)
    return StreamRunner(env.db, [dest], sinks={dest.name: sink}, **{**FAST, **kwargs})


async def status_of(env: AuditEnv, name: str) -> Any:
    rows = {r.destination: r for r in await stream_status(env.db)}
    return rows[name]


# --------------------------------------------------------------------------- webhook


async def test_webhook_delivers_every_event_in_order_signed(
    audit_env: AuditEnv, receiver: Receiver
) -> None:
    await log_events(audit_env, 23)
    runner = webhook_runner(audit_env, receiver.url, batch_size=5)
    await runner.start()
    try:
        expected = [str(i) for i in stream_order(audit_env)]
        await wait_until(lambda: len(receiver.event_ids()) >= len(expected))
        await wait_until(lambda: _caught_up(audit_env, receiver.url))
    finally:
        await runner.stop()
    assert receiver.event_ids() == expected  # in order, each once (no failure happened)
    assert receiver.bad_signatures == 0
    for headers, body in receiver.requests:
        ids = [e["id"] for e in json.loads(body)["events"]]
        assert headers[EVENT_IDS_HEADER.lower()].split(",") == ids
        assert len(ids) <= 5
    first = json.loads(receiver.requests[0][1])["events"][0]
    assert {"id", "org_id", "action", "created_at", "workos_user_id"} <= first.keys()
    status = await status_of(audit_env, runner.destinations[receiver.url].name)
    assert (status.delivered, status.lag_events, status.error_count) == (len(expected), 0, 0)


async def test_killed_mid_batch_redelivers_and_loses_nothing(
    audit_env: AuditEnv, receiver: Receiver
) -> None:
    await log_events(audit_env, 12)
    receiver.delay = 2.0  # the receiver stores the batch, then answers slowly
    runner = webhook_runner(audit_env, receiver.url, batch_size=5)
    await runner.start()
    await wait_until(lambda: len(receiver.requests) >= 1)
    await runner.stop()  # killed before the delivery was confirmed: the cursor did not move
    receiver.delay = 0.0
    assert (await status_of(audit_env, receiver.url)).delivered == 0

    restarted = webhook_runner(audit_env, receiver.url, batch_size=5)
    await restarted.start()
    expected = [str(i) for i in stream_order(audit_env)]
    try:
        await wait_until(lambda: dedup(receiver.event_ids()) == expected)
    finally:
        await restarted.stop()
    received = receiver.event_ids()
    assert len(received) > len(expected), "the unconfirmed batch is delivered again"
    assert dedup(received) == expected  # deduplicated by id: complete and in order


async def test_webhook_outage_backs_off_then_catches_up(
    audit_env: AuditEnv, receiver: Receiver
) -> None:
    name = receiver.url
    receiver.stop()  # the receiver is down: connections are refused
    await log_events(audit_env, 6)
    pending = audit_env.count()  # with the world's own events
    runner = webhook_runner(audit_env, receiver.url, batch_size=4)
    await runner.start()
    try:
        await wait_until(lambda: _errors_at_least(audit_env, name, 2))
        down = await status_of(audit_env, name)
        assert down.delivered == 0
        assert down.lag_events == pending
        assert "ConnectError" in (down.last_error or "")

        receiver.status = 500  # back, but failing
        receiver.start()
        before = (await status_of(audit_env, name)).error_count
        await wait_until(lambda: _errors_at_least(audit_env, name, before + 2))
        failing = await status_of(audit_env, name)
        assert "HTTP 500" in (failing.last_error or "")
        assert failing.lag_events == pending
        assert failing.lag_seconds > 0

        # the primary log is unaffected meanwhile
        started = time.monotonic()
        await log_events(audit_env, 10, start=6)
        assert time.monotonic() - started < 5.0

        receiver.status = 200
        expected = [str(i) for i in stream_order(audit_env)]
        await wait_until(lambda: dedup(receiver.event_ids()) == expected, within=20)
        await wait_until(lambda: _caught_up(audit_env, name))
    finally:
        await runner.stop()
    after = await status_of(audit_env, name)
    assert (after.delivered, after.lag_events) == (pending + 10, 0)
    assert after.error_count >= 4


async def _caught_up(env: AuditEnv, name: str) -> bool:
    """The cursor itself (not just the destination) has passed every committed event."""
    with contextlib.suppress(KeyError):
        return (await status_of(env, name)).lag_events == 0
    return False


async def _errors_at_least(env: AuditEnv, name: str, n: int) -> bool:
    with contextlib.suppress(KeyError):
        return bool((await status_of(env, name)).error_count >= n)
    return False


async def test_a_down_destination_never_slows_the_primary_log(
    audit_env: AuditEnv, receiver: Receiver
) -> None:
    receiver.delay = 5.0  # a destination that hangs on every request
    await log_events(audit_env, 3)
    before = audit_env.count()
    runner = webhook_runner(audit_env, receiver.url, batch_size=5)
    await runner.start()
    try:
        await wait_until(lambda: len(receiver.requests) >= 1)  # a delivery is now in flight
        latencies = []
        for i in range(20):
            started = time.monotonic()
            await log_events(audit_env, 1, start=100 + i)
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 1.0
        assert audit_env.count() == before + 20
        # the in-flight stream holds no transaction id: the horizon passes the new events
        async with audit_env.db.async_engine("system").connect() as conn:
            horizon = (await conn.execute(sa.text("select app.txid_horizon()"))).scalar_one()
        with audit_env.db.sync_engine("admin").connect() as conn:
            newest = conn.execute(sa.text("select max(txid) from audit_logs")).scalar_one()
        assert horizon > newest
    finally:
        await runner.stop()


async def test_a_late_commit_is_delivered_not_skipped(
    audit_env: AuditEnv, receiver: Receiver
) -> None:
    a = audit_env.world.a
    older = [str(i) for i in stream_order(audit_env)]  # the world's events, all committed
    late_id = uuid.uuid4()
    late = audit_env.db.sync_engine("admin").connect()
    tx = late.begin()
    late.execute(
        sa.text(
            "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
            "resource_type) values (:id, :org, :actor, 'user', 'PROFILE_VIEWED', 'profile')"
        ),
        {"id": late_id, "org": a.org_id, "actor": a.expert},
    )
    late_txid = late.execute(sa.text("select pg_current_xact_id()::text::bigint")).scalar_one()
    runner = webhook_runner(audit_env, receiver.url, batch_size=100)
    name = receiver.url
    try:
        early = [str(i) for i in await log_events(audit_env, 5)]  # committed while it is open
        await runner.register()
        for _ in range(3):
            await runner.step(name)
        # the reader stopped at the horizon: nothing from the open transaction on, yet
        assert receiver.event_ids() == older
        assert (await status_of(audit_env, name)).lag_events == 5
        tx.commit()
    finally:
        late.close()
    while await runner.step(name):
        pass
    await runner.stop()
    assert receiver.event_ids() == [*older, str(late_id), *early]
    with audit_env.db.sync_engine("admin").connect() as conn:
        txids = (
            conn.execute(
                sa.text("select txid from audit_logs where id::text = any(:ids)"), {"ids": early}
            )
            .scalars()
            .all()
        )
    assert min(txids) > late_txid


# --------------------------------------------------------------------------- NATS


@pytest.fixture
async def nats_stream() -> AsyncIterator[tuple[str, str]]:
    """A unique stream name and subject prefix on the machine's NATS server, deleted after."""
    try:
        nc = await nats.connect(
            f"nats://{NATS_HOST}:{NATS_PORT}", connect_timeout=2, allow_reconnect=False
        )
    except Exception as exc:
        pytest.skip(f"NATS server at {NATS_HOST}:{NATS_PORT} is unreachable: {exc}")
    token = secrets.token_hex(4)
    name, subject = f"CARELOG_TEST_{token.upper()}", f"carelogtest.{token}.audit"
    try:
        yield name, subject
    finally:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(name)
        await nc.close()


async def stream_messages(name: str) -> list[Any]:
    nc = await nats.connect(f"nats://{NATS_HOST}:{NATS_PORT}", allow_reconnect=False)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return []
        state = info.state
        if not state.messages:
            return []
        return [await js.get_msg(name, seq) for seq in range(state.first_seq, state.last_seq + 1)]
    finally:
        await nc.close()


def nats_url(port: int, stream: tuple[str, str]) -> str:
    return f"nats://127.0.0.1:{port}?stream={stream[0]}&subject={stream[1]}"


async def test_nats_delivers_in_order_and_dedups_by_event_id(
    audit_env: AuditEnv, nats_stream: tuple[str, str]
) -> None:
    await log_events(audit_env, 17)
    dest = parse_destination(nats_url(NATS_PORT, nats_stream))
    runner = StreamRunner(audit_env.db, [dest], batch_size=6, **FAST)
    await runner.start()
    expected = [str(i) for i in stream_order(audit_env)]
    try:
        await wait_until(lambda: _count_is(nats_stream[0], len(expected)))
        await wait_until(lambda: _caught_up(audit_env, dest.name))
    finally:
        await runner.stop()
    messages = await stream_messages(nats_stream[0])
    assert [m.headers["Nats-Msg-Id"] for m in messages] == expected
    for m in messages:
        body = json.loads(m.data)
        assert m.headers["Nats-Msg-Id"] == body["id"]
        assert m.subject == f"{nats_stream[1]}.{body['org_id']}"

    # a batch sent again (a crash before the cursor moved) is stored once: server-side dedup
    sink = NatsSink(dest)
    async with audit_env.db.async_engine("system").connect() as conn:
        again = await read_batch(conn, START, 10)
    await sink.deliver(again)
    await sink.close()
    assert len(await stream_messages(nats_stream[0])) == len(expected)
    status = await status_of(audit_env, dest.name)
    assert (status.delivered, status.lag_events, status.error_count) == (len(expected), 0, 0)


async def _count_is(name: str, n: int) -> bool:
    return len(await stream_messages(name)) >= n


class TcpProxy:
    """A local port forwarding to the NATS server, which the test opens and closes."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(NATS_HOST, self.target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_nats_outage_then_catch_up(audit_env: AuditEnv, nats_stream: tuple[str, str]) -> None:
    proxy = TcpProxy(NATS_PORT)  # closed: the "server" is down
    dest = parse_destination(nats_url(proxy.port, nats_stream))
    await log_events(audit_env, 8)
    first = audit_env.count()  # with the world's own events
    runner = StreamRunner(audit_env.db, [dest], batch_size=5, **FAST)
    await runner.start()
    try:
        await wait_until(lambda: _errors_at_least(audit_env, dest.name, 2))
        down = await status_of(audit_env, dest.name)
        assert (down.delivered, down.lag_events) == (0, first)
        assert down.last_error

        await proxy.open()
        await wait_until(lambda: _count_is(nats_stream[0], first))
        await proxy.close()  # a second outage, with events logged during it
        await log_events(audit_env, 7, start=8)
        before = (await status_of(audit_env, dest.name)).error_count
        await wait_until(lambda: _errors_at_least(audit_env, dest.name, before + 1))
        assert (await status_of(audit_env, dest.name)).lag_events > 0

        await proxy.open()
        await wait_until(lambda: _count_is(nats_stream[0], first + 7))
        await wait_until(lambda: _caught_up(audit_env, dest.name))
    finally:
        await runner.stop()
        await proxy.close()
    expected = [str(i) for i in stream_order(audit_env)]
    ids = [m.headers["Nats-Msg-Id"] for m in await stream_messages(nats_stream[0])]
    assert ids == expected  # all of them, in order, each stored once
    after = await status_of(audit_env, dest.name)
    assert (after.delivered, after.lag_events) == (first + 7, 0)
    assert after.error_count > before


# --------------------------------------------------------------------------- privileges


def _sqlstate(db: Any, kind: str, sql: str) -> str | None:
    with db.sync_engine(kind).connect() as conn:
        try:
            conn.execute(sa.text(sql))
        except DBAPIError as exc:
            return getattr(exc.orig, "sqlstate", None)
        finally:
            conn.rollback()
    return None


def test_only_the_system_role_reads_the_stream(audit_env: AuditEnv) -> None:
    db = audit_env.db
    read = (
        "select * from app.audit_stream_read(0, '1970-01-01', "
        "'00000000-0000-0000-0000-000000000000', app.txid_horizon(), 10)"
    )
    lag = "select * from app.audit_stream_lag(0, '1970-01-01', '00000000-0000-0000-0000-000000000000')"
    for kind in ("app", "writer"):
        assert _sqlstate(db, kind, read) == "42501", kind
        assert _sqlstate(db, kind, lag) == "42501", kind
        assert _sqlstate(db, kind, "select * from audit_stream_cursors") == "42501", kind
        assert (
            _sqlstate(
                db,
                kind,
                "insert into audit_stream_cursors (destination, kind) values ('x', 'nats')",
            )
            == "42501"
        ), kind
    assert _sqlstate(db, "system", read) is None
    assert _sqlstate(db, "system", lag) is None
    # the system role still sees no organization's rows directly
    with db.sync_engine("system").connect() as conn:
        assert conn.execute(sa.text("select count(*) from audit_logs")).scalar_one() == 0
    with db.sync_engine("admin").connect() as conn:
        public = conn.execute(
            sa.text(
                "select count(*) from pg_proc p, aclexplode(p.proacl) a "
                "where p.proname in ('audit_stream_read', 'audit_stream_lag') and a.grantee = 0"
            )
        ).scalar_one()
        definer = conn.execute(
            sa.text(
                "select bool_and(prosecdef) from pg_proc "
                "where proname in ('audit_stream_read', 'audit_stream_lag')"
            )
        ).scalar_one()
    assert public == 0
    assert definer is True


def test_the_read_refuses_a_partial_position_or_a_huge_batch(audit_env: AuditEnv) -> None:
    sql = "select * from app.audit_stream_read(0, null, '00000000-0000-0000-0000-000000000000', 10, 10)"
    assert _sqlstate(audit_env.db, "system", sql) == "22023"
    sql = "select * from app.audit_stream_read(0, '1970-01-01', '00000000-0000-0000-0000-000000000000', 10, 1000000)"
    assert _sqlstate(audit_env.db, "system", sql) == "22023"


# --------------------------------------------------------------------------- configuration


def destinations_from_env(environ: dict[str, str]) -> list[Destination]:
    return destinations_from_settings(Settings.from_env(environ))


def test_destinations_from_the_environment() -> None:
    dests = destinations_from_env(
        {
            "CARELOG_AUDIT_STREAMS": "nats://u:pw@127.0.0.1:4222, https://siem.example/hook",
            "CARELOG_AUDIT_STREAM_WEBHOOK_SECRET": "s3cret",
        }
    )
    assert [(d.kind, d.name) for d in dests] == [
        ("nats", "nats://127.0.0.1:4222"),  # credentials never become the cursor's key
        ("webhook", "https://siem.example/hook"),
    ]
    assert dests[0].nats_stream == "CARELOG_AUDIT"
    assert dests[0].nats_subject == "carelog.audit"
    assert dests[1].webhook_secret == b"s3cret"
    assert destinations_from_env({}) == []


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("http://siem.example/hook", "s"),  # plain http off the machine
        ("https://siem.example/hook", None),  # no signing secret
        ("kafka://broker:9092", None),
        ("nats://127.0.0.1:4222?stream=bad name", None),
        ("nats://127.0.0.1:4222,nats://127.0.0.1:4222", None),
    ],
)
def test_bad_destinations_are_refused(value: str, secret: str | None) -> None:
    env = {"CARELOG_AUDIT_STREAMS": value}
    if secret:
        env["CARELOG_AUDIT_STREAM_WEBHOOK_SECRET"] = secret
    with pytest.raises(ConfigurationError):
        destinations_from_env(env)


def test_signatures_verify_only_the_signed_body_recently() -> None:
    body = b'{"events": []}'
    header = sign(b"k", 1_000, body)
    assert header.startswith("t=1000,v1=")
    assert verify_signature(b"k", header, body, now=1_010)
    assert not verify_signature(b"k", header, body + b" ", now=1_010)
    assert not verify_signature(b"other", header, body, now=1_010)
    assert not verify_signature(b"k", header, body, now=2_000)  # a replay, too late
    assert not verify_signature(b"k", "garbage", body, now=1_010)


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 8.0, rng) for n in range(1, 10)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(4.0 <= d <= 8.0 for d in delays[5:])
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered, not in lock step


# --------------------------------------------------------------------------- CLI


def test_status_command_shows_lag_and_errors(
    fresh_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from carelog.cli import stream_commands
    from carelog.cli.stream_commands import app

    monkeypatch.setattr(stream_commands, "out", Console(width=250))  # one row per line

    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit_stream_cursors (destination, kind, error_count, last_error) "
                "values ('https://siem.example/hook', 'webhook', 3, 'HTTP 503')"
            )
        )
        total = conn.execute(sa.text("select count(*) from audit_logs")).scalar_one()
    settings = fresh_db.settings
    monkeypatch.setenv(
        "CARELOG_DATABASE_URL", fresh_db.admin_url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("CARELOG_ROLE_PREFIX", settings.roles.owner.removesuffix("_owner"))
    monkeypatch.setenv("CARELOG_AUDIT_STREAMS", "nats://127.0.0.1:4222")
    monkeypatch.delenv("CARELOG_AUDIT_STREAM_WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    hook = next(line for line in lines if "siem.example" in line)
    assert "webhook" in hook and "HTTP 503" in hook and f" {total} " in hook
    assert any("nats://127.0.0.1:4222" in line for line in lines)  # configured, not started
    assert "lag (events)" in result.output
