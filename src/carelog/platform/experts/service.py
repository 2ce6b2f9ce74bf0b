"""Saving, publishing and unpublishing the expert's profile. Services never commit.

Publication locks the profile row (``FOR UPDATE``) instead of the legacy platform's
read-then-toggle, and publish/unpublish are explicit verbs (idempotent) rather than a toggle, so
two clicks can never undo each other. The first publication records the practitioner agreement
(time, version from ``CARELOG_PRACTITIONER_AGREEMENT_VERSION``, the client address the audit
context trusted) and logs it as its own action, not as a "compliance report".
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import IntegrityError

from carelog.audit import log_audit_event
from carelog.audit.context import current_context
from carelog.platform.auth.dependencies import RequestUnit
from carelog.platform.common import SETUP_STEPS, mark_setup_step, require_expert
from carelog.platform.errors import ApiError, conflict, not_found
from carelog.platform.experts import queries
from carelog.platform.experts.schemas import ProfileIn, ProfileOut

_AUDITED = (
    "first_name",
    "last_name",
    "headline",
    "short_bio",
    "long_bio",
    "profile_picture",
    "primary_category_id",
    "secondary_category_id",
    "social_links",
)


async def _load(unit: RequestUnit) -> ProfileOut | None:
    me = unit.identity
    row = await queries.profile_for_update(unit.session, me.org_id, me.user_id)
    return None if row is None else ProfileOut.model_validate(dict(row._mapping))


def _audited(profile: ProfileOut | None) -> dict[str, Any]:
    if profile is None:
        return {}
    return profile.model_dump(mode="json", include=set(_AUDITED))


async def save_profile(unit: RequestUnit, data: ProfileIn) -> ProfileOut:
    session, me = unit.session, unit.identity
    await require_expert(session, me.user_id)
    old = await _load(unit)
    values = data.model_dump(mode="json")
    values["social_links"] = json.dumps(values["social_links"])
    try:
        async with session.begin_nested():
            await queries.upsert_profile(session, me.org_id, me.user_id, values)
    except IntegrityError:
        raise ApiError(
            "unknown category",
            status_code=422,
            code="UNKNOWN_CATEGORY",
            field="primary_category_id",
        ) from None
    new = await _load(unit)
    assert new is not None
    await mark_setup_step(session, me.org_id, me.user_id, "profile")
    await log_audit_event(
        "PROFILE_UPDATED",
        "profile",
        new.id,
        {"old_values": _audited(old), "new_values": _audited(new)},
        {"created": old is None},
        data_subject=me.user_id,
    )
    return new


async def _missing_steps(unit: RequestUnit) -> list[str]:
    me = unit.identity
    row = await queries.setup_steps_done(unit.session, me.org_id, me.user_id)
    if row is None:
        return list(SETUP_STEPS)
    return [s for s in SETUP_STEPS if not getattr(row, s)]


async def set_published(
    unit: RequestUnit, *, publish: bool, agreement_version: str = "1.0"
) -> ProfileOut:
    """Publish or hide; the first publication records ``agreement_version`` (from settings)."""
    session, me = unit.session, unit.identity
    await require_expert(session, me.user_id)
    profile = await _load(unit)
    if profile is None:
        raise not_found("profile", field=None)
    if profile.published == publish:
        return profile  # idempotent: nothing changed, nothing to log
    first_time = publish and profile.practitioner_agreement_accepted_at is None
    if publish:
        missing = await _missing_steps(unit)
        if missing:
            raise conflict(
                "the expert setup is not complete",
                "SETUP_INCOMPLETE",
                field="expert_setup",
                hint="complete these steps first: " + ", ".join(missing),
            )
    if first_time:
        await queries.publish_accepting_agreement(
            session, me.org_id, me.user_id, agreement_version, current_context().ip_address
        )
    else:
        await queries.set_published(session, me.org_id, me.user_id, published=publish)
    updated = await _load(unit)
    assert updated is not None
    if first_time:
        await log_audit_event(
            "PRACTITIONER_AGREEMENT_ACCEPTED",
            "legal_agreement",
            profile.id,
            {
                "new_values": {
                    "version": updated.practitioner_agreement_version,
                    "accepted_at": updated.practitioner_agreement_accepted_at,
                }
            },
            data_subject=me.user_id,
        )
    await log_audit_event(
        "PROFILE_PUBLISHED" if publish else "PROFILE_UNPUBLISHED",
        "profile",
        profile.id,
        {"old_values": {"published": not publish}, "new_values": {"published": publish}},
        data_subject=me.user_id,
    )
    return updated
