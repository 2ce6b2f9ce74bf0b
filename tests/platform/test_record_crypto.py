"""AES-256-GCM record encryption: binding to the row, tamper detection, keys and rotation."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

import pytest

from carelog.core.errors import CarelogError, ConfigurationError
from carelog.core.settings import Settings
from carelog.platform.records import (
    ENCRYPTION_METHOD,
    RecordDecryptionError,
    RecordKeyring,
)
from carelog.platform.records.crypto import KEY_FILE_NAME

TEXT = "Patient reports chest pain 3/10; no fever. Próxima consulta em 2 semanas."


def _key(fill: int | None = None) -> str:
    raw = bytes([fill]) * 32 if fill is not None else os.urandom(32)
    return base64.b64encode(raw).decode()


def _ids() -> dict[str, uuid.UUID]:
    return {"record_id": uuid.uuid4(), "meeting_id": uuid.uuid4(), "org_id": uuid.uuid4()}


@pytest.fixture
def keyring() -> RecordKeyring:
    return RecordKeyring.parse(f"k2:{_key()},k1:{_key()}")


def _settings(tmp_path: Path, env: str = "development") -> Settings:
    base = Settings.from_env({"CARELOG_DATA_DIR": str(tmp_path), "CARELOG_ENV": "development"})
    return base.model_copy(update={"env": env})


def test_round_trip(keyring: RecordKeyring) -> None:
    ids = _ids()
    sealed = keyring.encrypt(TEXT, **ids)
    assert sealed.key_id == "k2" == keyring.active_key_id
    assert sealed.encryption_method == ENCRYPTION_METHOD == "aes256gcm"
    assert sealed.blob.startswith("v1.")
    assert "Patient" not in sealed.blob
    assert keyring.decrypt(sealed.key_id, sealed.blob, **ids) == TEXT


def test_fresh_nonce_every_time(keyring: RecordKeyring) -> None:
    ids = _ids()
    assert keyring.encrypt(TEXT, **ids).blob != keyring.encrypt(TEXT, **ids).blob


def test_string_and_uuid_ids_are_the_same_binding(keyring: RecordKeyring) -> None:
    ids = _ids()
    sealed = keyring.encrypt(TEXT, **ids)
    as_text = {k: str(v).upper() for k, v in ids.items()}
    assert keyring.decrypt(sealed.key_id, sealed.blob, **as_text) == TEXT


@pytest.mark.parametrize("moved", ["record_id", "meeting_id", "org_id"])
def test_ciphertext_moved_to_another_row_fails(keyring: RecordKeyring, moved: str) -> None:
    ids = _ids()
    sealed = keyring.encrypt(TEXT, **ids)
    other = {**ids, moved: uuid.uuid4()}
    with pytest.raises(RecordDecryptionError) as info:
        keyring.decrypt(sealed.key_id, sealed.blob, **other)
    assert "authentication" in str(info.value)


def _flip(text: str, index: int) -> str:
    char = "A" if text[index] != "A" else "B"
    return text[:index] + char + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: _flip(b, len(b) - 5),  # ciphertext/tag
        lambda b: _flip(b, 5),  # nonce
        lambda b: b[:-4],  # truncated
        lambda b: "v2" + b[2:],  # unknown version
        lambda b: b.replace(".", "", 1),  # wrong shape
        lambda b: b + "!",  # not base64
        lambda b: "",
    ],
)
def test_tampered_blob_fails(keyring: RecordKeyring, tamper: object) -> None:
    ids = _ids()
    sealed = keyring.encrypt(TEXT, **ids)
    assert callable(tamper)
    with pytest.raises(RecordDecryptionError) as info:
        keyring.decrypt(sealed.key_id, tamper(sealed.blob), **ids)
    assert TEXT[:10] not in str(info.value)


def test_unknown_key_id_fails(keyring: RecordKeyring) -> None:
    ids = _ids()
    sealed = keyring.encrypt(TEXT, **ids)
    with pytest.raises(RecordDecryptionError, match="unknown record key id 'k9'"):
        keyring.decrypt("k9", sealed.blob, **ids)


def test_wrong_key_fails(keyring: RecordKeyring) -> None:
    ids = _ids()
    sealed = keyring.encrypt(TEXT, **ids)
    with pytest.raises(RecordDecryptionError):
        keyring.decrypt("k1", sealed.blob, **ids)


def test_rotation_reencrypts_under_the_active_key() -> None:
    old_key, new_key = _key(), _key()
    old = RecordKeyring.parse(f"k1:{old_key}")
    ids = _ids()
    before = old.encrypt(TEXT, **ids)

    rotated_ring = RecordKeyring.parse(f"k2:{new_key},k1:{old_key}")
    assert rotated_ring.needs_rotation(before.key_id)
    after = rotated_ring.rotate(before.key_id, before.blob, **ids)
    assert after.key_id == "k2"
    assert not rotated_ring.needs_rotation(after.key_id)
    assert rotated_ring.decrypt(after.key_id, after.blob, **ids) == TEXT
    # The old blob still decrypts while the retired key is configured ...
    assert rotated_ring.decrypt(before.key_id, before.blob, **ids) == TEXT
    # ... and the new blob needs only the new key.
    only_new = RecordKeyring.parse(f"k2:{new_key}")
    assert only_new.decrypt(after.key_id, after.blob, **ids) == TEXT
    with pytest.raises(RecordDecryptionError):
        only_new.decrypt(before.key_id, before.blob, **ids)


def test_repr_hides_key_material() -> None:
    key = _key(7)
    ring = RecordKeyring.parse(f"k1:{key}")
    assert key not in repr(ring)
    assert "k1" in repr(ring)


def test_urlsafe_base64_and_whitespace_accepted() -> None:
    raw = bytes(range(200, 232))
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    ring = RecordKeyring.parse(f" a:{urlsafe} , b:{_key()} ")
    assert ring.key_ids == ("a", "b")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("nocolon", "kid:BASE64KEY"),
        (":" + _key(1), "kid:BASE64KEY"),
        ("k1:", "kid:BASE64KEY"),
        ("k1:not base64!!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "is 5 bytes, AES-256 needs 32"),
        (f"k1:{_key(1)},k1:{_key(2)}", "appears twice"),
        (f"bad.id:{_key(1)}", "invalid key id"),
        (" , ", "no record encryption key"),
    ],
)
def test_env_parsing_errors_are_clear(value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RecordKeyring.parse(value)
    message = str(info.value)
    assert "CARELOG_RECORD_KEYS" in message
    assert fragment in message
    assert _key(1) not in message and _key(2) not in message


def test_from_settings_prefers_the_variable(tmp_path: Path) -> None:
    ring = RecordKeyring.from_settings(
        _settings(tmp_path).with_changes(record_keys=f"prod1:{_key()}")
    )
    assert ring.key_ids == ("prod1",)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_dev_key_is_persisted_0600_and_reused(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    first = RecordKeyring.from_settings(settings)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ids = _ids()
    sealed = first.encrypt(TEXT, **ids)

    second = RecordKeyring.from_settings(settings)
    assert second.key_ids == first.key_ids
    assert second.decrypt(sealed.key_id, sealed.blob, **ids) == TEXT


def test_dev_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    RecordKeyring.from_settings(settings)
    (tmp_path / KEY_FILE_NAME).chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        RecordKeyring.from_settings(settings)


def test_production_without_keys_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        RecordKeyring.from_settings(_settings(tmp_path, env="production"))
    assert "CARELOG_RECORD_KEYS" in str(info.value)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_non_uuid_ids_are_rejected(keyring: RecordKeyring) -> None:
    with pytest.raises(CarelogError, match="record_id"):
        keyring.encrypt(TEXT, record_id="42", meeting_id=uuid.uuid4(), org_id=uuid.uuid4())
