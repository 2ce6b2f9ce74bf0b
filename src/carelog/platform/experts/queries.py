"""The SQL of the expert profile, kept in one place so it can be read (and reviewed) as SQL.

Every statement runs on the session of the caller's unit, inside the request's transaction, so
row-level security decides once more what it can see or change; each statement still names the
owner (``workos_user_id``) and the organization itself, so a missing policy never widens it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from carelog.db.unit import Row, Unit

#: What a profile answers with (``ProfileOut``); a profile saved without links reads as ``[]``.
PROFILE_COLUMNS = (
    "id, first_name, last_name, headline, short_bio, long_bio, profile_picture,"
    " primary_category_id, secondary_category_id, coalesce(social_links, '[]'::jsonb)"
    " as social_links, published, practitioner_agreement_accepted_at,"
    " practitioner_agreement_version"
)

# Locking the row is what makes publish/unpublish safe against a second click in flight.
PROFILE_FOR_UPDATE = sa.text(
    f"select {PROFILE_COLUMNS} from profiles where org_id = :org_id"
    " and workos_user_id = :user_id for update"
)
# ``social_links`` arrives as JSON text and is cast here, so the column holds a real jsonb.
UPSERT_PROFILE = sa.text(
    "insert into profiles (org_id, workos_user_id, first_name, last_name,"
    " headline, short_bio, long_bio, profile_picture, primary_category_id,"
    " secondary_category_id, social_links)"
    " values (:org_id, :user_id, :first_name, :last_name, :headline, :short_bio, :long_bio,"
    " :profile_picture, :primary_category_id, :secondary_category_id,"
    " cast(:social_links as jsonb))"
    " on conflict (org_id, workos_user_id) do update set"
    " first_name = excluded.first_name, last_name = excluded.last_name,"
    " headline = excluded.headline, short_bio = excluded.short_bio,"
    " long_bio = excluded.long_bio, profile_picture = excluded.profile_picture,"
    " primary_category_id = excluded.primary_category_id,"
    " secondary_category_id = excluded.secondary_category_id,"
    " social_links = excluded.social_links"
)
#: The onboarding steps, one boolean per name of ``carelog.platform.common.SETUP_STEPS``.
SETUP_STEPS_DONE = sa.text(
    "select profile_completed as profile, availability_completed as availability,"
    " events_completed as events, identity_completed as identity,"
    " payment_completed as payment"
    " from expert_setup where org_id = :org_id and workos_user_id = :user_id"
)
SET_PUBLISHED = sa.text(
    "update profiles set published = :published"
    " where org_id = :org_id and workos_user_id = :user_id"
)
# The first publication also records the practitioner agreement: when (the database's clock),
# which version, and from which client address.
PUBLISH_ACCEPTING_AGREEMENT = sa.text(
    "update profiles set published = :published,"
    " practitioner_agreement_accepted_at = now(),"
    " practitioner_agreement_version = :version,"
    " practitioner_agreement_ip_address = cast(:ip_address as inet)"
    " where org_id = :org_id and workos_user_id = :user_id"
)


async def profile_for_update(session: Unit, org_id: uuid.UUID, user_id: str) -> Row | None:
    """The caller's profile, locked until the unit ends; ``None`` before the first save."""
    result = await session.execute(PROFILE_FOR_UPDATE, {"org_id": org_id, "user_id": user_id})
    return result.first()


async def upsert_profile(
    session: Unit, org_id: uuid.UUID, user_id: str, values: Mapping[str, Any]
) -> None:
    """``values`` holds every ``ProfileIn`` field, ``social_links`` as JSON text."""
    await session.execute(UPSERT_PROFILE, {"org_id": org_id, "user_id": user_id, **values})


async def setup_steps_done(session: Unit, org_id: uuid.UUID, user_id: str) -> Row | None:
    """One boolean per setup step; ``None`` when the expert has no setup row yet."""
    result = await session.execute(SETUP_STEPS_DONE, {"org_id": org_id, "user_id": user_id})
    return result.first()


async def set_published(session: Unit, org_id: uuid.UUID, user_id: str, *, published: bool) -> None:
    await session.execute(
        SET_PUBLISHED, {"published": published, "org_id": org_id, "user_id": user_id}
    )


async def publish_accepting_agreement(
    session: Unit, org_id: uuid.UUID, user_id: str, version: str, ip_address: str | None
) -> None:
    await session.execute(
        PUBLISH_ACCEPTING_AGREEMENT,
        {
            "published": True,
            "version": version,
            "ip_address": ip_address,
            "org_id": org_id,
            "user_id": user_id,
        },
    )
