"""Saving, publishing and unpublishing the expert's profile. Services never commit.

Publication locks the profile row (``FOR UPDATE``) instead of the legacy platform's
read-then-toggle, and publish/unpublish are explicit verbs (idempotent) rather than a toggle, so
two clicks can never undo each other. The first publication records the practitioner agreement
(time, version from ``CARELOG_PRACTITIONER_AGREEMENT_VERSION``, the client address the audit
context trusted) and logs it as its own action, not as a "compliance report".
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit import log_audit_event
from carelog.audit.context import current_context
from carelog.platform.common import SETUP_STEPS, mark_setup_step, require_expert
from carelog.platform.errors import ApiError, conflict, not_found
from carelog.platform.experts.schemas import ProfileIn, ProfileOut

_COLUMNS = (
    "id, first_name, last_name, headline, short_bio, long_bio, profile_picture,"
    " primary_category_id, secondary_category_id, coalesce(social_links, '[]'::jsonb)"
    " as social_links, published, practitioner_agreement_accepted_at,"
    " practitioner_agreement_version"
)
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


async def _load(session: AsyncSession, org_id: uuid.UUID, user_id: str) -> ProfileOut | None:
    row = (
        await session.execute(
            sa.text(
                f"select {_COLUMNS} from profiles where org_id = :o"
                " and workos_user_id = :u for update"
            ),
            {"o": org_id, "u": user_id},
        )
    ).first()
    return None if row is None else ProfileOut.model_validate(dict(row._mapping))


def _audited(profile: ProfileOut | None) -> dict[str, Any]:
    if profile is None:
        return {}
    return profile.model_dump(mode="json", include=set(_AUDITED))


async def save_profile(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, data: ProfileIn
) -> ProfileOut:
    await require_expert(session, user_id)
    old = await _load(session, org_id, user_id)
    values = data.model_dump(mode="json")
    values["social_links"] = json.dumps(values["social_links"])
    try:
        async with session.begin_nested():
            await session.execute(
                sa.text(
                    "insert into profiles (org_id, workos_user_id, first_name, last_name,"
                    " headline, short_bio, long_bio, profile_picture, primary_category_id,"
                    " secondary_category_id, social_links)"
                    " values (:o, :u, :first_name, :last_name, :headline, :short_bio, :long_bio,"
                    " :profile_picture, :primary_category_id, :secondary_category_id,"
                    " cast(:social_links as jsonb))"
                    " on conflict (org_id, workos_user_id) do update set"
                    " first_name = excluded.first_name, last_name = excluded.last_name,"
                    " headline = excluded.headline, short_bio = excluded.short_bio,"
                    " long_bio = excluded.long_bio, profile_picture = excluded.profile_picture,"
                    " primary_category_id = excluded.primary_category_id,"
                    " secondary_category_id = excluded.secondary_category_id,"
                    " social_links = excluded.social_links"
                ),
                {"o": org_id, "u": user_id, **values},
            )
    except IntegrityError:
        raise ApiError(
            "unknown category",
            status_code=422,
            code="UNKNOWN_CATEGORY",
            field="primary_category_id",
        ) from None
    new = await _load(session, org_id, user_id)
    assert new is not None
    await mark_setup_step(session, org_id, user_id, "profile")
    await log_audit_event(
        "PROFILE_UPDATED",
        "profile",
        new.id,
        {"old_values": _audited(old), "new_values": _audited(new)},
        {"created": old is None},
        data_subject=user_id,
    )
    return new


async def _missing_steps(session: AsyncSession, org_id: uuid.UUID, user_id: str) -> list[str]:
    row = (
        await session.execute(
            sa.text(
                "select "
                + ", ".join(f"{s}_completed as {s}" for s in SETUP_STEPS)
                + " from expert_setup where org_id = :o and workos_user_id = :u"
            ),
            {"o": org_id, "u": user_id},
        )
    ).first()
    if row is None:
        return list(SETUP_STEPS)
    return [s for s in SETUP_STEPS if not getattr(row, s)]


async def set_published(
    session: AsyncSession,
    org_id: uuid.UUID,
    user_id: str,
    *,
    publish: bool,
    agreement_version: str = "1.0",
) -> ProfileOut:
    """Publish or hide; the first publication records ``agreement_version`` (from settings)."""
    await require_expert(session, user_id)
    profile = await _load(session, org_id, user_id)
    if profile is None:
        raise not_found("profile", field=None)
    if profile.published == publish:
        return profile  # idempotent: nothing changed, nothing to log
    first_time = publish and profile.practitioner_agreement_accepted_at is None
    if publish:
        missing = await _missing_steps(session, org_id, user_id)
        if missing:
            raise conflict(
                "the expert setup is not complete",
                "SETUP_INCOMPLETE",
                field="expert_setup",
                hint="complete these steps first: " + ", ".join(missing),
            )
    params: dict[str, Any] = {"o": org_id, "u": user_id, "p": publish}
    sets = "published = :p"
    if first_time:
        sets += (
            ", practitioner_agreement_accepted_at = now(),"
            " practitioner_agreement_version = :v,"
            " practitioner_agreement_ip_address = cast(:ip as inet)"
        )
        params.update(v=agreement_version, ip=current_context().ip_address)
    await session.execute(
        sa.text(f"update profiles set {sets} where org_id = :o and workos_user_id = :u"),
        params,
    )
    updated = await _load(session, org_id, user_id)
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
            data_subject=user_id,
        )
    await log_audit_event(
        "PROFILE_PUBLISHED" if publish else "PROFILE_UNPUBLISHED",
        "profile",
        profile.id,
        {"old_values": {"published": not publish}, "new_values": {"published": publish}},
        data_subject=user_id,
    )
    return updated
