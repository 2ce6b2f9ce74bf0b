"""The SQL of payments (webhook bookkeeping, handlers, Connect accounts, checkout), in one place.

Why here and read as SQL: the exactly-once claim, the transfer state machine and the approval
holds are decided by these statements' ``where`` and ``on conflict`` clauses, so a reviewer
reads them side by side instead of hunting them through the handlers. Every statement runs in
the session of the caller's system scope, one organization at a time, so row-level security
decides what it sees and may change; nothing here commits or opens a scope.
"""

from __future__ import annotations

import sqlalchemy as sa

# --------------------------------------------------------------------------- webhook events

#: Inside one webhook transaction, the next organization's context (transaction-local).
SWITCH_ORG = sa.text("select set_config('app.org_id', :org_id, true)")
# Claims the event: a new one, or one that failed before (a retry). A processed event claims
# nothing (no row returned); a concurrent duplicate waits on the primary key until it commits.
CLAIM_EVENT = sa.text(
    "insert into stripe_webhook_events (stripe_event_id, event_type, org_id, status)"
    " values (:stripe_event_id, :event_type, :org_id, 'processing')"
    " on conflict (stripe_event_id) do update set status = 'processing',"
    " attempts = stripe_webhook_events.attempts + 1, last_error = null,"
    " org_id = coalesce(excluded.org_id, stripe_webhook_events.org_id)"
    " where stripe_webhook_events.status = 'failed'"
    " returning stripe_event_id"
)
MARK_PROCESSED = sa.text(
    "update stripe_webhook_events set status = 'processed', processed_at = now()"
    " where stripe_event_id = :stripe_event_id"
)
# In its own transaction after the handler rolled back; never downgrades a processed event.
RECORD_FAILURE = sa.text(
    "insert into stripe_webhook_events (stripe_event_id, event_type, org_id, status, last_error)"
    " values (:stripe_event_id, :event_type, :org_id, 'failed', :error)"
    " on conflict (stripe_event_id) do update set status = 'failed',"
    " attempts = stripe_webhook_events.attempts + 1, last_error = excluded.last_error"
    " where stripe_webhook_events.status <> 'processed'"
)
#: Whether a forged delivery names a payment this organization really has.
INTENT_HAS_MEETING = sa.text(
    "select exists(select 1 from meetings where org_id = :org_id"
    " and stripe_payment_intent_id = :payment_intent_id)"
)

# --------------------------------------------------------------------------- organizations

ORGS_OF_REFS = sa.text("select org from app.payment_ref_orgs(cast(:refs as text[])) as org")
RECORD_REF = sa.text(
    "insert into payment_refs (ref, org_id, kind, payment_intent_id)"
    " values (:ref, :org_id, :kind, :payment_intent_id) on conflict do nothing"
)
INTENT_OF_CHARGE = sa.text(
    "select payment_intent_id from payment_refs where org_id = :org_id and ref = :ref"
    " and kind = 'charge'"
)

# --------------------------------------------------------------------------- Connect accounts

PAYOUTS_READY = sa.text(
    "select stripe_connect_details_submitted and stripe_connect_charges_enabled"
    " and stripe_connect_payouts_enabled from users where stripe_connect_account_id = :account"
)
ACCOUNT_KNOWN = sa.text(
    "select exists(select 1 from users where stripe_connect_account_id = :account)"
)
EXPERT_CONNECT_ACCOUNT = sa.text(
    "select stripe_connect_account_id from users where workos_user_id = :expert_id"
)
MIRROR_ACCOUNT_FLAGS = sa.text(
    "update users set stripe_connect_details_submitted = :details_submitted,"
    " stripe_connect_charges_enabled = :charges_enabled,"
    " stripe_connect_payouts_enabled = :payouts_enabled,"
    " stripe_connect_onboarding_complete = :ready"
    " where stripe_connect_account_id = :account returning workos_user_id"
)
# Payouts not made yet and not held by an admin or by a dispute/refund.
SET_PAYOUT_HOLD = sa.text(
    "update payment_transfers set requires_approval = :hold where org_id = :org_id"
    " and expert_connect_account_id = :account and status in ('PENDING', 'READY')"
    " and admin_user_id is null and requires_approval <> :hold returning id"
)

# --------------------------------------------------------------------------- handlers

MEETINGS_OF_INTENT = sa.text(
    "select id, event_id, workos_user_id, start_time, end_time,"
    " coalesce(data_subject_id, guest_workos_user_id) as guest_workos_user_id,"
    " stripe_session_id, stripe_payment_status, stripe_application_fee_amount"
    " from meetings where org_id = :org_id and stripe_payment_intent_id = :payment_intent_id"
    " order by id"
)
INTENT_OF_CHECKOUT = sa.text(
    "select stripe_payment_intent_id from meetings where org_id = :org_id"
    " and stripe_session_id = :session_id"
)
MEETINGS_SUCCEEDED = sa.text(
    "update meetings set stripe_payment_status = 'succeeded' where org_id = :org_id"
    " and stripe_payment_intent_id = :payment_intent_id"
    " and stripe_payment_status in ('pending', 'processing')"
)
# Inserted READY, or promoted from PENDING exactly once: no row returned means unchanged.
TRANSFER_READY = sa.text(
    "insert into payment_transfers (org_id, payment_intent_id, checkout_session_id,"
    " event_id, expert_connect_account_id, expert_clerk_user_id, amount, currency,"
    " platform_fee, session_start_time, scheduled_transfer_time, status,"
    " requires_approval)"
    " values (:org_id, :payment_intent_id, :session_id, :event_id, :account, :expert_id,"
    " :amount, :currency, :fee, :start, :scheduled, 'READY', :approval)"
    " on conflict (org_id, payment_intent_id) do update set status = 'READY'"
    " where payment_transfers.status = 'PENDING'"
    " returning (xmax = 0) as inserted"
)
# The self-join reads each meeting's status before the update, for the audit row.
MEETINGS_FAILED = sa.text(
    "update meetings m set stripe_payment_status = 'failed'"
    " from meetings old where m.id = old.id and m.org_id = :org_id"
    " and m.stripe_payment_intent_id = :payment_intent_id"
    " and m.stripe_payment_status in ('pending', 'processing', 'succeeded')"
    " returning m.id, coalesce(m.data_subject_id, m.guest_workos_user_id)"
    " as guest_workos_user_id, old.stripe_payment_status as before"
)
TRANSFERS_FAILED = sa.text(
    "update payment_transfers set status = 'FAILED', stripe_error_code = :error_code,"
    " stripe_error_message = :error_message where org_id = :org_id"
    " and payment_intent_id = :payment_intent_id"
    " and status in ('PENDING', 'READY') returning id"
)
MEETINGS_REFUNDED = sa.text(
    "update meetings set stripe_payment_status = 'refunded'"
    " where org_id = :org_id and stripe_payment_intent_id = :payment_intent_id"
)
TRANSFERS_REFUNDED = sa.text(
    "update payment_transfers set status = 'REFUNDED' where org_id = :org_id"
    " and payment_intent_id = :payment_intent_id and status not in ('COMPLETED', 'PAID_OUT')"
    " returning id"
)
FLAG_REFUNDED_AFTER_PAYOUT = sa.text(
    "update payment_transfers set requires_approval = true,"
    " admin_notes = 'refunded after payout: recover the transfer'"
    " where org_id = :org_id and payment_intent_id = :payment_intent_id"
    " and status in ('COMPLETED', 'PAID_OUT') returning id"
)
TRANSFERS_DISPUTED = sa.text(
    "update payment_transfers set status = 'DISPUTED', requires_approval = true,"
    " admin_notes = 'disputed: payout held until the dispute is closed'"
    " where org_id = :org_id and payment_intent_id = :payment_intent_id"
    " and status not in ('COMPLETED', 'PAID_OUT') returning id"
)
FLAG_DISPUTED_AFTER_PAYOUT = sa.text(
    "update payment_transfers set requires_approval = true,"
    " admin_notes = 'disputed after payout: recover the transfer'"
    " where org_id = :org_id and payment_intent_id = :payment_intent_id"
    " and status in ('COMPLETED', 'PAID_OUT') returning id"
)

# --------------------------------------------------------------------------- checkout

CHECKOUT_EVENT = sa.text(
    "select org_id, workos_user_id, name, duration_in_minutes, price, currency"
    " from events where id = :event_id and is_active"
)
COMMISSION_RATE = sa.text(
    "select commission_rate from subscription_plans where org_id = :org_id"
    " and plan_type = 'commission'"
)
# One hold per guest and slot: a guest who starts again moves it to the new session.
HOLD_SLOT = sa.text(
    "insert into slot_reservations (org_id, event_id, workos_user_id,"
    " guest_email, start_time, end_time, expires_at, stripe_session_id)"
    " values (:org_id, :event_id, :expert_id, :guest_email, :start, :end,"
    " now() + make_interval(secs => :hold_seconds), :session_id)"
    " on conflict (org_id, event_id, start_time, guest_email) do update"
    " set stripe_session_id = excluded.stripe_session_id,"
    " expires_at = excluded.expires_at, end_time = excluded.end_time"
)
