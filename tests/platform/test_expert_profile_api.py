"""Expert profile over HTTP: save, publish (agreement on first publication), unpublish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_harness import Api, running_api

from carelog.audit.sealing import SEAL_PREFIX
from carelog.db.engine import Database

PROFILE = {
    "first_name": "Ana",
    "last_name": "Silva",
    "headline": "Physiotherapist",
    "social_links": [{"name": "linkedin", "url": "https://linkedin.com/in/ana"}],
}
STEPS = (
    "profile_completed, availability_completed, events_completed, identity_completed,"
    " payment_completed"
)


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


def complete_setup(api: Api) -> None:
    cols = ", ".join(f"{c.strip()} = true" for c in STEPS.split(","))
    api.execute(f"update expert_setup set {cols} where org_id = :o", o=api.world.a.org_id)


async def test_put_profile_masks_names_in_the_audit(api: Api) -> None:
    a = api.world.a
    r = await api.client.put(
        "/api/expert-profile", json=PROFILE, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 200, r.text
    assert r.json()["headline"] == "Physiotherapist"
    [row] = api.audit("action = 'PROFILE_UPDATED' and workos_user_id = :u", u=a.expert)
    assert (row["org_id"], row["workos_user_id"], row["resource_type"]) == (
        a.org_id,
        a.expert,
        "profile",
    )
    assert row["data_subject_id"] == a.expert
    # The expert's name is their personal data: sealed under their subject key (erasable).
    assert row["old_values"]["first_name"].startswith(SEAL_PREFIX)
    assert row["new_values"]["first_name"].startswith(SEAL_PREFIX)
    assert row["new_values"]["headline"] == "Physiotherapist"
    assert "Silva" not in str(row)


async def test_profile_validation_and_authorization(api: Api) -> None:
    a, b = api.world.a, api.world.b
    r = await api.client.put(
        "/api/expert-profile",
        json={**PROFILE, "first_name": ""},
        headers=api.auth(a.expert, a.org_id),
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.first_name"
    r = await api.client.put(
        "/api/expert-profile",
        json={**PROFILE, "published": True},
        headers=api.auth(a.expert, a.org_id),
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.published"
    assert (await api.client.put("/api/expert-profile", json=PROFILE)).status_code == 401
    r = await api.client.put(
        "/api/expert-profile", json=PROFILE, headers=api.auth(a.member, a.org_id)
    )
    assert r.status_code == 403
    r = await api.client.post("/api/expert-profile/publish", headers=api.auth(b.expert, a.org_id))
    assert r.status_code == 403
    assert api.audit("resource_type = 'profile' and workos_user_id not like '%owner'") == []


async def test_publish_requires_a_complete_setup(api: Api) -> None:
    a = api.world.a
    api.execute("update profiles set published = false where org_id = :o", o=a.org_id)
    r = await api.client.post("/api/expert-profile/publish", headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["field"] == "expert_setup"
    assert "availability, events, identity, payment" in error["hint"]
    assert (
        api.audit(
            "resource_type in ('profile', 'legal_agreement') and workos_user_id = :u", u=a.expert
        )
        == []
    )


async def test_first_publication_records_the_agreement(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the runtime's settings are what a deployment sets as CARELOG_PRACTITIONER_AGREEMENT_VERSION
    changed = api.runtime.settings.with_changes(practitioner_agreement_version="2.1")
    monkeypatch.setattr(api.runtime, "settings", changed)
    a = api.world.a
    api.execute("update profiles set published = false where org_id = :o", o=a.org_id)
    complete_setup(api)
    headers = api.auth(a.expert, a.org_id)
    r = await api.client.post("/api/expert-profile/publish", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["published"] is True
    assert r.json()["practitioner_agreement_version"] == "2.1"
    [profile] = api.rows(
        "select practitioner_agreement_ip_address::text as ip, practitioner_agreement_accepted_at"
        " from profiles where org_id = :o and workos_user_id = :u",
        o=a.org_id,
        u=a.expert,
    )
    assert profile["ip"] == "203.0.113.7/32" or profile["ip"] == "203.0.113.7"
    assert profile["practitioner_agreement_accepted_at"] is not None
    # Publishing again changes nothing and logs nothing.
    assert (
        await api.client.post("/api/expert-profile/publish", headers=headers)
    ).status_code == 200
    r = await api.client.post("/api/expert-profile/unpublish", headers=headers)
    assert r.json()["published"] is False
    r = await api.client.post("/api/expert-profile/publish", headers=headers)
    assert r.json()["published"] is True
    rows = api.audit(
        "resource_type in ('profile', 'legal_agreement') and workos_user_id = :u", u=a.expert
    )
    assert [x["action"] for x in rows] == [
        "PRACTITIONER_AGREEMENT_ACCEPTED",
        "PROFILE_PUBLISHED",
        "PROFILE_UNPUBLISHED",
        "PROFILE_PUBLISHED",
    ]
    agreement = rows[0]
    assert agreement["resource_type"] == "legal_agreement"
    assert agreement["new_values"]["version"] == "2.1"
    assert str(agreement["ip_address"]) == "203.0.113.7"
    assert rows[1]["old_values"] == {"published": False}
    assert rows[1]["new_values"] == {"published": True}
    assert all(x["workos_user_id"] == a.expert and x["org_id"] == a.org_id for x in rows)
