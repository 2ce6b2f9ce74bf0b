"""The SQL of data-subject rights (identity, erasure, accounting, export), in one place.

Kept as SQL so what an erasure touches, and what an accounting or export reads, can be checked
by reading it. Every statement runs in the session it is given: a system scope pinned to one
organization, or an admin's request unit, so RLS decides what it sees on top of the explicit
``org_id`` each statement names. Nothing here audits or decides; the modules around it do.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from carelog.db.unit import Unit

#: The subject's meetings: booked under their subject id, or by their WorkOS user.
_MINE = "org_id = :org_id and (data_subject_id = :subject_id or guest_workos_user_id = :subject_id)"
_MINE_M = (
    "m.org_id = :org_id"
    " and (m.data_subject_id = :subject_id or m.guest_workos_user_id = :subject_id)"
)

# --------------------------------------------------------------------------- identity

SUBJECT_BY_EMAIL_TOKEN = sa.text(
    "select subject_id from data_subjects where org_id = :org_id and email_token = :email_token"
)
INSERT_SUBJECT = sa.text(
    "insert into data_subjects (org_id, subject_id, kind, email_token, workos_user_id)"
    " values (:org_id, :subject_id, :kind, :email_token, :workos_user_id)"
    " on conflict do nothing returning subject_id"
)
LOCK_MEETINGS_WITHOUT_SUBJECT = sa.text(
    "select id, guest_email, guest_name from meetings where org_id = :org_id"
    " and data_subject_id is null for update"
)
SET_MEETING_SUBJECT = sa.text(
    "update meetings set data_subject_id = :subject_id where org_id = :org_id and id = :meeting_id"
)

# --------------------------------------------------------------------------- erasure

SUBJECT_KNOWN = sa.text(
    "select exists(select 1 from data_subjects where org_id = :org_id"
    " and subject_id = :subject_id)"
    " or exists(select 1 from meetings where org_id = :org_id and (data_subject_id = :subject_id"
    " or guest_workos_user_id = :subject_id))"
)
OPEN_OR_DONE_ERASURE = sa.text(
    "select id, status, outcome from subject_erasures where org_id = :org_id"
    " and subject_id = :subject_id and status in ('requested', 'completed')"
    " order by created_at desc limit 1"
)
INSERT_ERASURE = sa.text(
    "insert into subject_erasures (org_id, subject_id, reason, requested_by)"
    " values (:org_id, :subject_id, :reason, :requested_by) returning id"
)
ACTIVE_HOLD = sa.text(
    "select id, reason, data_subject_id, created_at from audit_legal_holds"
    " where org_id = :org_id and released_at is null"
    " and (data_subject_id = :subject_id or data_subject_id is null)"
    " order by created_at limit 1"
)
LOCK_ERASURE = sa.text(
    "select status, outcome, reason, requested_by, created_at, now() as now"
    " from subject_erasures where org_id = :org_id and id = :erasure_id for update"
)
SUBJECT_KIND = sa.text(
    "select kind from data_subjects where org_id = :org_id and subject_id = :subject_id"
)
#: Reservations carry only the e-mail: match it before the meetings lose theirs.
DELETE_RESERVATIONS = sa.text(
    "delete from slot_reservations where org_id = :org_id and guest_email in"
    f" (select guest_email from meetings where {_MINE}) returning id"
)
ERASE_MEETINGS = sa.text(
    "update meetings set guest_email = :erased_email, guest_name = :erased_name,"
    f" guest_notes = null where {_MINE} returning id"
)
#: The shared mirror of a WorkOS user loses its contact details only if the person is a plain
#: user (no expert or admin role) and no member of this organization: a patient, not staff.
#: WorkOS itself keeps its copy (see erasure.NOT_REACHED).
ERASE_USER = sa.text(
    "update users u set email = :erased_email, username = null, image_url = null"
    " where u.workos_user_id = :subject_id and u.role = 'user' and not exists"
    " (select 1 from user_org_memberships m where m.org_id = :org_id"
    " and m.workos_user_id = u.workos_user_id) returning u.id"
)
ERASE_SUBJECT = sa.text(
    "update data_subjects set email_token = null, erased_at = coalesce(erased_at, now())"
    " where org_id = :org_id and subject_id = :subject_id returning id"
)
RETAIN_RECORDS = sa.text(
    "update records r set guest_email = null,"
    " destroy_after = coalesce(r.destroy_after, r.last_modified_at + :retention)"
    " from meetings m where m.org_id = r.org_id and m.id = r.meeting_id"
    " and r.org_id = :org_id and (m.data_subject_id = :subject_id"
    " or m.guest_workos_user_id = :subject_id)"
    " returning r.id, r.destroy_after"
)
LEGACY_EVENTS = sa.text(
    "select count(*) from audit_logs where org_id = :org_id and data_subject_id = :subject_id"
    " and schema_version < 2"
)
COMPLETE_ERASURE = sa.text(
    "update subject_erasures set status = 'completed', completed_at = now(),"
    " outcome = cast(:outcome as jsonb) where org_id = :org_id and id = :erasure_id"
)
REFUSE_ERASURE = sa.text(
    "update subject_erasures set status = 'refused', completed_at = now(),"
    " outcome = cast(:outcome as jsonb) where org_id = :org_id and id = :erasure_id"
)
PENDING_ERASURES = sa.text(
    "select id, subject_id from subject_erasures where org_id = :org_id"
    " and status = 'requested' order by created_at"
)
#: PostgreSQL decides what is due (``destroy_after <= now()``), not the application's clock.
DESTROY_DUE_RECORDS = sa.text(
    "delete from records r using meetings m where r.org_id = :org_id"
    " and m.org_id = r.org_id and m.id = r.meeting_id"
    " and r.destroy_after is not null and r.destroy_after <= now()"
    " returning r.id, r.meeting_id,"
    " coalesce(m.data_subject_id, m.guest_workos_user_id) as subject"
)

# --------------------------------------------------------------------------- accounting

ORG_NAME = sa.text("select name from organizations where id = :org_id")
SUBJECT_IS_ERASED = sa.text(
    "select erased_at is not null from data_subjects"
    " where org_id = :org_id and subject_id = :subject_id"
)
#: One row more than asked for: it only says the accounting was truncated.
ACCESS_EVENTS = sa.text(
    "select id, created_at, workos_user_id, actor_type, action, resource_type,"
    " resource_id, outcome from audit_logs where org_id = :org_id"
    " and data_subject_id = :subject_id and created_at >= :since"
    " order by created_at desc, id desc limit :limit"
)
#: Actor id → name and role, from the org's profiles, memberships and application roles.
ACTOR_PEOPLE = sa.text(
    "select u.workos_user_id as id, u.role as app_role, u.username,"
    " p.first_name, p.last_name, m.role as member_role"
    " from users u"
    " left join profiles p on p.org_id = :org_id and p.workos_user_id = u.workos_user_id"
    " left join user_org_memberships m on m.org_id = :org_id"
    " and m.workos_user_id = u.workos_user_id"
    " where u.workos_user_id = any(:actor_ids)"
)
DISCLOSURES = sa.text(
    "select disclosed_at, recipient, purpose, description, recorded_by"
    " from subject_disclosures where org_id = :org_id and subject_id = :subject_id"
    " and disclosed_at >= :since order by disclosed_at desc"
)
INSERT_DISCLOSURE = sa.text(
    "insert into subject_disclosures (id, org_id, subject_id, recipient, purpose,"
    " description, disclosed_at, recorded_by) values (:disclosure_id, :org_id, :subject_id,"
    " :recipient, :purpose, :description, :disclosed_at, :recorded_by)"
)

# --------------------------------------------------------------------------- export

SUBJECT_PROFILE = sa.text(
    "select subject_id, kind, workos_user_id, created_at, erased_at"
    " from data_subjects where org_id = :org_id and subject_id = :subject_id"
)
SUBJECT_MEETINGS = sa.text(
    "select m.id, m.event_id, m.start_time, m.end_time, m.timezone, m.status,"
    " m.guest_email, m.guest_name, m.guest_notes, m.stripe_payment_status,"
    f" m.stripe_amount from meetings m where {_MINE_M} order by m.start_time"
)
SUBJECT_RECORDS = sa.text(
    "select r.id, r.meeting_id, r.expert_id, r.key_id, r.version,"
    " r.vault_encrypted_content, r.vault_encrypted_metadata, r.created_at,"
    " r.last_modified_at, r.destroy_after from records r join meetings m"
    f" on m.org_id = r.org_id and m.id = r.meeting_id where {_MINE_M}"
    " order by r.created_at"
)
SUBJECT_EVENTS = sa.text(
    "select id, created_at, workos_user_id, action, resource_type,"
    " resource_id, outcome, old_values, new_values, metadata"
    " from audit_logs where org_id = :org_id and data_subject_id = :subject_id"
    " order by created_at, id"
)


async def rows(session: Unit, statement: sa.TextClause, **params: Any) -> list[Any]:
    """Every row ``statement`` returns (for ``returning`` statements: every row it changed)."""
    return list((await session.execute(statement, params)).all())


async def first(session: Unit, statement: sa.TextClause, **params: Any) -> Any:
    """The first row ``statement`` returns, or None."""
    return (await session.execute(statement, params)).first()


async def one(session: Unit, statement: sa.TextClause, **params: Any) -> Any:
    """The one row ``statement`` returns (raises if there is none, or more than one)."""
    return (await session.execute(statement, params)).one()


async def scalar(session: Unit, statement: sa.TextClause, **params: Any) -> Any:
    """The first column of the first row, or None."""
    return await session.scalar(statement, params)
