"""The platform's audit vocabulary: every action the care platform records, as data.

It keeps all 45 actions of the legacy platform's new vocabulary and gives each legacy action a
precise home (``legacy_names``) instead of the legacy platform's lossy remapping, where creating a
service, saving a schedule or publishing a profile all became ``PROFILE_UPDATED`` and a
practitioner's consent became ``COMPLIANCE_REPORT_GENERATED``. Failed and denied attempts are
the same action with ``outcome='failure'|'denied'``, so "who tried to read this record and was
refused" is a filter, not a separate vocabulary. The first code era wrote generic verbs on table
names (``create`` on ``events``); those legacy names are written ``"<table>:<verb>"``.
"""

from __future__ import annotations

from carelog.audit.catalog import ActionSpec, AuditCatalog

A = ActionSpec

ACTIONS: tuple[ActionSpec, ...] = (
    # Medical records (PHI). Reads are fail-closed: no durable event, no read.
    A(
        "MEDICAL_RECORD_CREATED",
        "medical_record",
        "write",
        phi=True,
        legacy_names=(
            "CREATE_MEDICAL_RECORD",
            "FAILED_CREATE_MEDICAL_RECORD",
            "FAILED_CREATE_MEDICAL_RECORD_UNAUTHORIZED",
        ),
    ),
    A(
        "MEDICAL_RECORD_VIEWED",
        "medical_record",
        "read",
        phi=True,
        fail_closed=True,
        legacy_names=(
            "READ_MEDICAL_RECORDS_FOR_MEETING",
            "READ_ALL_MEDICAL_RECORDS_FOR_EXPERT",  # a bulk read of every record of an expert
            "FAILED_READ_MEDICAL_RECORDS",
            "FAILED_READ_MEDICAL_RECORDS_UNAUTHORIZED",
        ),
    ),
    A(
        "MEDICAL_RECORD_UPDATED",
        "medical_record",
        "write",
        phi=True,
        legacy_names=(
            "UPDATE_MEDICAL_RECORD",
            "FAILED_UPDATE_MEDICAL_RECORD",
            "FAILED_UPDATE_MEDICAL_RECORD_UNAUTHORIZED",
        ),
    ),
    A("MEDICAL_RECORD_DELETED", "medical_record", "write", phi=True),
    A("MEDICAL_RECORDS_EXPORTED", "medical_record", "read", phi=True, fail_closed=True),
    # Appointments
    A("APPOINTMENT_CREATED", "appointment", legacy_names=("MEETING_CREATED", "meetings:create")),
    A("APPOINTMENT_VIEWED", "appointment", "read"),
    A("APPOINTMENT_UPDATED", "appointment", legacy_names=("MEETING_UPDATED", "meetings:update")),
    A(
        "APPOINTMENT_CANCELLED",
        "appointment",
        legacy_names=("MEETING_CANCELLED", "meetings:delete"),
    ),
    A("APPOINTMENT_COMPLETED", "appointment"),
    A("APPOINTMENT_NO_SHOW", "appointment"),
    A(
        "APPOINTMENT_PAYMENT_FAILED",
        "appointment",
        "system",
        legacy_names=("MEETING_PAYMENT_FAILED",),
        description="The payment of one booked meeting failed (distinct from PAYMENT_FAILED).",
    ),
    A(
        "APPOINTMENT_PAYMENT_EXPIRY_RISK",
        "appointment",
        "system",
        legacy_names=("MULTIBANCO_EXPIRY_RISK",),
        description="A delayed (Multibanco) voucher may expire before the appointment.",
    ),
    # Payments
    A("PAYMENT_INITIATED", "payment", "system"),
    A("PAYMENT_COMPLETED", "payment", "system"),
    A("PAYMENT_FAILED", "payment", "system"),
    A("PAYMENT_REFUNDED", "payment", "system"),
    A("PAYMENT_DISPUTED", "payment", "system"),
    A(
        "PAYOUT_ACCOUNT_UPDATED",
        "payment",
        "system",
        description="Stripe reported new Connect flags for an expert's payout account.",
    ),
    # Prescriptions
    A("PRESCRIPTION_CREATED", "prescription", phi=True),
    A("PRESCRIPTION_VIEWED", "prescription", "read", phi=True, fail_closed=True),
    A("PRESCRIPTION_UPDATED", "prescription", phi=True),
    A("PRESCRIPTION_CANCELLED", "prescription", phi=True),
    # Health data
    A("HEALTH_DATA_ACCESSED", "health_data", "read", phi=True, fail_closed=True),
    A("HEALTH_DATA_EXPORTED", "health_data", "read", phi=True, fail_closed=True),
    A("LAB_RESULTS_VIEWED", "health_data", "read", phi=True, fail_closed=True),
    A("DIAGNOSIS_RECORDED", "health_data", phi=True),
    # Users and profiles
    A("PROFILE_CREATED", "profile"),
    A("PROFILE_UPDATED", "profile"),
    A("PROFILE_VIEWED", "profile", "read"),
    A("PROFILE_DELETED", "profile"),
    A("PROFILE_PUBLISHED", "profile", legacy_names=("PROFILE_PUBLISHED",)),
    A("PROFILE_UNPUBLISHED", "profile", legacy_names=("PROFILE_UNPUBLISHED",)),
    A(
        "PRACTITIONER_AGREEMENT_ACCEPTED",
        "consent",
        legacy_names=("PRACTITIONER_AGREEMENT_ACCEPTED",),
        description="A practitioner accepted the platform agreement (consent, not a report).",
    ),
    # Expert services, availability
    A("EVENT_TYPE_CREATED", "event_type", legacy_names=("EVENT_CREATED", "events:create")),
    A("EVENT_TYPE_UPDATED", "event_type", legacy_names=("EVENT_UPDATED", "events:update")),
    A("EVENT_TYPE_DELETED", "event_type", legacy_names=("EVENT_DELETED", "events:delete")),
    A("EVENT_TYPES_REORDERED", "event_type"),
    A(
        "SCHEDULE_UPDATED",
        "schedule",
        legacy_names=(
            "SCHEDULE_UPDATED",
            "schedules:create",
            "schedules:update",
            "schedules:delete",
        ),
    ),
    A("BLOCKED_DATE_ADDED", "schedule", legacy_names=("BLOCKED_DATE_ADDED",)),
    A("BLOCKED_DATE_REMOVED", "schedule", legacy_names=("BLOCKED_DATE_REMOVED",)),
    # Organizations
    A("ORG_MEMBER_INVITED", "organization"),
    A("ORG_MEMBER_REMOVED", "organization"),
    A("ORG_SETTINGS_UPDATED", "organization"),
    A("ORG_SUBSCRIPTION_CHANGED", "organization"),
    # Security
    A(
        "UNAUTHORIZED_ACCESS_ATTEMPT",
        "security",
        "security",
        legacy_names=("FAILED_OPERATION_UNAUTHORIZED",),
    ),
    A("SUSPICIOUS_ACTIVITY_DETECTED", "security", "security"),
    A("DATA_BREACH_DETECTED", "security", "security"),
    A("SECURITY_ALERT_TRIGGERED", "security", "security"),
    A("SECURITY_ALERT_NOTIFIED", "security", "security", legacy_names=("SECURITY_ALERT_NOTIFIED",)),
    A("SECURITY_ALERT_IGNORED", "security", "security", legacy_names=("SECURITY_ALERT_IGNORED",)),
    A(
        "WEBHOOK_SIGNATURE_INVALID",
        "security",
        "security",
        description="A webhook arrived with a missing or invalid signature.",
    ),
    A("SYSTEM_ERROR", "system", "system", legacy_names=("SYSTEM_ERROR", "FAILED_OPERATION")),
    A("DEMO_DATA_SEEDED", "system", "system", description="`carelog demo seed` created a row."),
    # Compliance
    A("COMPLIANCE_REPORT_GENERATED", "compliance", "read"),
    A("GDPR_DATA_REQUEST", "compliance"),
    A("GDPR_DATA_DELETION", "compliance"),
    # Integrations (the legacy platform's dotted lower-case names, kept verbatim)
    A("google_calendar.connection_initiated", "integration"),
    A("google_calendar.connected", "integration"),
    A("google_calendar.connection_failed", "integration"),
    A("google_calendar.disconnected", "integration"),
    A("google_calendar.token_refreshed", "integration"),
    # Keys
    A(
        "ENCRYPTION_KEY_ROTATED",
        "security",
        "system",
        description="Medical records were re-encrypted under a new key.",
    ),
)

RESOURCE_TYPES: tuple[str, ...] = (
    # the legacy platform's new vocabulary
    "medical_record",
    "appointment",
    "payment",
    "prescription",
    "health_data",
    "lab_result",
    "profile",
    "organization",
    "user",
    "subscription",
    "security",
    "compliance",
    "integration",
    # precise homes for what the legacy platform lumped into "profile"
    "event_type",
    "schedule",
    "blocked_date",
    "legal_agreement",
    "webhook",
    "encryption_key",
)

#: Legacy resource types → their home here (the first wrapper used the plural table names).
LEGACY_RESOURCE_TYPES: dict[str, str] = {
    "events": "event_type",
    "meetings": "appointment",
    "schedules": "schedule",
    "medical_record": "medical_record",
    "meeting": "appointment",
    "event": "event_type",
    "schedule": "schedule",
    "payment_intent": "payment",
    "user": "user",
    "profile": "profile",
    "legal_agreement": "legal_agreement",
    "system": "security",
    "security_event": "security",
}

#: Field names whose values never enter the log in clear (masked with a keyed hash). Written in
#: snake_case; ``carelog.audit.fields`` matches every spelling (``guestEmail``, ``guest-email``),
#: trailing words (``clinicalNotes``) and parent keys (``{"guest": {"name": ...}}``).
SENSITIVE_FIELDS: tuple[str, ...] = (
    "content",
    "notes",
    "guest_notes",
    "note",
    "diagnosis",
    "diagnoses",
    "prescription",
    "symptoms",
    "medical_history",
    "medication",
    "medications",
    "allergies",
    "guest_name",
    "guest_email",
    "expert_name",
    "patient_name",
    "customer_name",
    "full_name",
    "display_name",
    "email",
    "email_address",
    "first_name",
    "last_name",
    "name_of_patient",
    "phone",
    "phone_number",
    "guest_phone",
    "address",
    "date_of_birth",
    "password",
    "token",
    "access_token",
    "refresh_token",
    "secret",
    "api_key",
    "card_number",
    "cvc",
    "iban",
    "bank_account",
    "vault_encrypted_content",
    "vault_encrypted_metadata",
    "record_metadata",
)


#: The sensitive fields that are a person's data (contact details, free text, clinical values):
#: in events about a data subject they are sealed under that subject's key, so erasing the
#: subject erases them. The rest (credentials, card and bank data) is only ever masked.
PERSONAL_FIELDS: tuple[str, ...] = (
    "content",
    "notes",
    "guest_notes",
    "note",
    "diagnosis",
    "diagnoses",
    "prescription",
    "symptoms",
    "medical_history",
    "guest_name",
    "guest_email",
    "email",
    "first_name",
    "last_name",
    "name_of_patient",
    "phone",
    "guest_phone",
    "address",
    "date_of_birth",
    "record_metadata",
)


def build_catalog() -> AuditCatalog:
    return AuditCatalog.build(ACTIONS, RESOURCE_TYPES, SENSITIVE_FIELDS, PERSONAL_FIELDS)
