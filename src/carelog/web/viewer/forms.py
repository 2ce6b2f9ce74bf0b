"""The list page's filter form: what a person typed, turned into validated ``AuditFilters``.

Dates are days in UTC (the end day inclusive); an invalid value comes back as the form's
``error`` (shown on the page) instead of an exception.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from carelog.audit.catalog import OUTCOMES
from carelog.audit.errors import AuditInputError
from carelog.audit.filters import AuditFilters

PAGE_SIZE = 50
FILTER_FIELDS = (
    "start",
    "end",
    "action",
    "resource_type",
    "resource_id",
    "actor_id",
    "data_subject_id",
    "outcome",
)


@dataclass(frozen=True)
class FilterForm:
    """The list page's filters as typed (for the form and links) and as validated filters."""

    values: dict[str, str]
    filters: AuditFilters | None
    error: str | None = None

    def query(self, **extra: str | None) -> str:
        pairs = [(k, v) for k, v in self.values.items() if v]
        pairs += [(k, v) for k, v in extra.items() if v]
        return urllib.parse.urlencode(pairs)

    def export_query(self, fmt: str) -> str:
        """The same conditions for ``/api/audit/export`` (datetimes, not dates)."""
        pairs: list[tuple[str, str]] = [("format", fmt)]
        f = self.filters
        if f is not None:
            if f.start is not None:
                pairs.append(("start", f.start.isoformat()))
            if f.end is not None:
                pairs.append(("end", f.end.isoformat()))
            pairs += [("action", a) for a in f.actions]
            pairs += [("resource_type", r) for r in f.resource_types]
            pairs += [("outcome", o) for o in f.outcomes]
            for name in ("resource_id", "actor_id", "data_subject_id"):
                value = getattr(f, name)
                if value is not None:
                    pairs.append((name, value))
        return urllib.parse.urlencode(pairs)


def _day(name: str, text: str, *, end: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise AuditInputError(
            f"{text!r} is not a date", field=name, hint="use YYYY-MM-DD (UTC)"
        ) from None
    at = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if not end:
        return at
    try:
        return at + timedelta(days=1)  # the end date is inclusive
    except OverflowError:
        raise AuditInputError(
            f"{text!r} is past the last representable day", field=name, hint="use a real date"
        ) from None


def parse_filters(params: Mapping[str, str], limit: int = PAGE_SIZE) -> FilterForm:
    values = {k: params.get(k, "").strip() for k in FILTER_FIELDS}
    values = {k: v for k, v in values.items() if v}
    try:
        start = _day("start", values["start"], end=False) if "start" in values else None
        end = _day("end", values["end"], end=True) if "end" in values else None
        outcome = values.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise AuditInputError(f"unknown outcome {outcome!r}", field="outcome")
        filters = AuditFilters(
            start=start,
            end=end,
            actions=(values["action"],) if "action" in values else (),
            resource_types=(values["resource_type"],) if "resource_type" in values else (),
            resource_id=values.get("resource_id"),
            actor_id=values.get("actor_id"),
            data_subject_id=values.get("data_subject_id"),
            outcomes=(cast(Any, outcome),) if outcome else (),
            limit=limit,
        )
    except AuditInputError as exc:
        field = {"start": "From", "end": "To"}.get(exc.field or "", exc.field or "filter")
        return FilterForm(values, None, f"{field}: {exc.message}")
    return FilterForm(values, filters)
