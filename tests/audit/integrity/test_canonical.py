"""Canonical event bytes: determinism, normalisation rules, and the documented example."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carelog.audit.integrity.canonical import (
    canonical_event_bytes,
    event_leaf_hash,
    format_timestamp,
)
from carelog.audit.integrity.merkle import leaf_hash

DOC = Path(__file__).resolve().parents[3] / "docs" / "integrity.md"

EXAMPLE: dict[str, object] = {
    "event_id": uuid.UUID("0190F5A2-7C3B-7D4E-8F10-2A3B4C5D6E7F"),
    "org_id": uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"),
    "occurred_at": datetime(2026, 3, 1, 14, 30, 5, 120000, tzinfo=timezone(timedelta(hours=2))),
    "actor": {"type": "user", "id": "usr_42", "roles": ["nurse", "admin"]},
    "action": "patient.record.viewed",
    "source_ip": ipaddress.ip_address("2001:0db8:0000:0000:0000:0000:0000:0001"),
    "seq": 1042,
    "success": True,
    "reason": None,
    "note": "Zoë's chart",
}
EXAMPLE_BYTES = (
    '{"action":"patient.record.viewed","actor":{"id":"usr_42","roles":["nurse","admin"],'
    '"type":"user"},"event_id":"0190f5a2-7c3b-7d4e-8f10-2a3b4c5d6e7f","note":"Zoë\'s chart",'
    '"occurred_at":"2026-03-01T12:30:05.120000Z","org_id":"6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",'
    '"reason":null,"seq":1042,"source_ip":"2001:db8::1","success":true,"v":1}'
).encode()
EXAMPLE_LEAF_HASH = "5d5bd85451767df2c56df70f08c829cd5f7e3c41d512e2bba8e4cb3a6836332c"


def reference(event: dict[str, Any]) -> bytes:
    """The spec as a third party would write it with only the standard library."""
    return json.dumps(
        {**event, "v": 1}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_documented_example() -> None:
    assert canonical_event_bytes(EXAMPLE) == EXAMPLE_BYTES
    assert event_leaf_hash(EXAMPLE).hex() == EXAMPLE_LEAF_HASH
    assert hashlib.sha256(b"\x00" + EXAMPLE_BYTES).hexdigest() == EXAMPLE_LEAF_HASH
    doc = DOC.read_text(encoding="utf-8")
    assert EXAMPLE_BYTES.decode() in doc
    assert EXAMPLE_LEAF_HASH in doc


def test_empty_event() -> None:
    assert canonical_event_bytes({}) == b'{"v":1}'


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(st.characters(codec="utf-8"), max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
events = st.dictionaries(st.text(max_size=12).filter(lambda k: k != "v"), json_values, max_size=15)


@given(events)
def test_plain_json_matches_stdlib_reference(event: dict[str, Any]) -> None:
    assert canonical_event_bytes(event) == reference(event)
    assert event_leaf_hash(event) == leaf_hash(reference(event))


@given(events, st.randoms(use_true_random=False))
def test_key_order_does_not_matter(event: dict[str, Any], rnd: Any) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = [(k, shuffled(v)) for k, v in value.items()]
            rnd.shuffle(items)
            return dict(items)
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    assert canonical_event_bytes(shuffled(event)) == canonical_event_bytes(event)


def test_key_order_is_code_point_order_not_utf16() -> None:
    # RFC 8785 (JCS) would put U+1F600 first: it sorts by UTF-16 code units.
    assert canonical_event_bytes({"\uffff": 1, "\U0001f600": 2, "B": 3, "a": 4}) == (
        '{"B":3,"a":4,"v":1,"\uffff":1,"\U0001f600":2}'.encode()
    )


def test_string_escaping() -> None:
    assert canonical_event_bytes({"s": 'a"\\\n\t\x01\x7f\u2028é/'}) == (
        b'{"s":"a\\"\\\\\\n\\t\\u0001\x7f\xe2\x80\xa8\xc3\xa9/","v":1}'
    )


aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.just(UTC) | st.timezones(),
)


@given(aware_datetimes)
def test_datetimes_become_utc_rfc3339_with_six_digits(value: datetime) -> None:
    expected = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert format_timestamp(value) == expected
    assert canonical_event_bytes({"t": value}) == f'{{"t":"{expected}","v":1}}'.encode()
    assert canonical_event_bytes({"n": {"t": [value]}}) == (
        f'{{"n":{{"t":["{expected}"]}},"v":1}}'.encode()
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC), "2026-01-02T03:04:05.000007Z"),
        (
            datetime(2026, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=1))),
            "2026-01-01T23:30:00.000000Z",
        ),
        (datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Berlin")), "2026-07-01T10:00:00.000000Z"),
        (datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=ZoneInfo("UTC")), "2026-07-01T12:00:00.000005Z"),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00.000000Z"),
    ],
)
def test_datetime_examples(value: datetime, text: str) -> None:
    assert format_timestamp(value) == text
    assert canonical_event_bytes({"t": value}) == f'{{"t":"{text}","v":1}}'.encode()


def test_equal_instants_give_equal_bytes() -> None:
    a = datetime(2026, 1, 1, 12, tzinfo=UTC)
    b = datetime(2026, 1, 1, 7, tzinfo=timezone(timedelta(hours=-5)))
    assert canonical_event_bytes({"t": a}) == canonical_event_bytes({"t": b})


@pytest.mark.parametrize("where", ["top", "nested", "list"])
def test_naive_datetimes_are_rejected(where: str) -> None:
    naive = datetime(2026, 1, 1, 12)
    event: dict[str, object] = {
        "top": {"at": naive},
        "nested": {"at": {"deeper": naive}},
        "list": {"at": [1, naive]},
    }[where]  # type: ignore[assignment]
    with pytest.raises(ValueError, match="naive datetime"):
        canonical_event_bytes(event)


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (
            uuid.UUID("ABCDEF00-0000-4000-8000-0000000000AA"),
            '"abcdef00-0000-4000-8000-0000000000aa"',
        ),
        (ipaddress.ip_address("192.0.2.10"), '"192.0.2.10"'),
        (ipaddress.ip_address("2001:DB8:0:0:1:0:0:1"), '"2001:db8::1:0:0:1"'),
        (ipaddress.ip_address("::ffff:192.0.2.1"), '"::ffff:192.0.2.1"'),
        (ipaddress.ip_network("2001:db8::/32"), '"2001:db8::/32"'),
        (ipaddress.ip_interface("192.0.2.1/24"), '"192.0.2.1/24"'),
        (date(2026, 2, 3), '"2026-02-03"'),
        (Colour.RED, '"red"'),
        (Level.HIGH, "3"),
        (Name("x"), '"x"'),
        ((1, "a"), '[1,"a"]'),
        (True, "true"),
        (None, "null"),
        (-(2**63), str(-(2**63))),
        (2**64 - 1, str(2**64 - 1)),
    ],
)
def test_value_normalisation(value: object, encoded: str) -> None:
    assert canonical_event_bytes({"x": value}) == f'{{"v":1,"x":{encoded}}}'.encode()
    assert canonical_event_bytes({"x": [value]}) == f'{{"v":1,"x":[{encoded}]}}'.encode()


@dataclass
class Thing:
    a: int


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"x": 1.5}, "floats are not allowed"),
        ({"x": float("nan")}, "floats are not allowed"),
        ({"x": {"y": [1.0]}}, "floats are not allowed"),
        ({"x": Decimal("1.5")}, "Decimal"),
        ({"x": b"raw"}, "bytes"),
        ({"x": {1, 2}}, "set"),
        ({"x": time(12, 0)}, "time"),
        ({"x": Thing(1)}, "Thing"),
        ({"x": {1: "a"}}, "keys must be strings"),
        ({1: "a"}, "keys must be strings"),
        ({"v": 2}, "reserved"),
        ({"x": 2**64}, "64-bit"),
        ({"x": -(2**63) - 1}, "64-bit"),
        ({"x": "\ud800"}, "surrogates"),
    ],
)
def test_rejections(event: dict[Any, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        canonical_event_bytes(event)


def test_nested_version_key_is_allowed_and_str_subclass_keys_are_plain() -> None:
    assert canonical_event_bytes({"x": {"v": 2}}) == b'{"v":1,"x":{"v":2}}'
    assert canonical_event_bytes({Name("k"): 1}) == b'{"k":1,"v":1}'
    assert canonical_event_bytes({Colour.RED: 1}) == b'{"red":1,"v":1}'


def test_error_names_the_field() -> None:
    with pytest.raises(ValueError, match="field 'when'"):
        canonical_event_bytes({"when": datetime(2026, 1, 1)})


def test_input_is_not_mutated() -> None:
    event = {"t": datetime(2026, 1, 1, tzinfo=UTC), "ip": ipaddress.ip_address("10.0.0.1")}
    before = dict(event)
    canonical_event_bytes(event)
    assert event == before
