"""Webhook secrets sealed with the platform's keys: sealed, opened, rotated, refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from darkroom.common.sealing import PREFIX, Sealer, SealingError
from darkroom.common.settings import IngestSettings, NotifySettings
from darkroom.ingest.app import create_runtime as gateway
from darkroom.notify.app import create_runtime as notify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def keys(*listed: str) -> SecretStr:
    return SecretStr(",".join(listed))


def test_a_sealed_secret_hides_it_and_opens_to_it() -> None:
    sealer = Sealer(keys(NEW))
    sealed = sealer.seal(SECRET)
    assert sealed.startswith(PREFIX)
    assert SECRET not in sealed and "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in sealed
    assert sealer.seal(SECRET) != sealed  # each sealing its own: equal secrets do not show
    assert sealer.open(sealed) == SECRET


def test_a_rotation_opens_what_the_old_key_sealed_and_seals_with_the_new() -> None:
    sealed_before = Sealer(keys(OLD)).seal(SECRET)
    rotated = Sealer(keys(NEW, OLD))
    assert rotated.open(sealed_before) == SECRET
    sealed_after = rotated.seal(SECRET)
    assert Sealer(keys(NEW)).open(sealed_after) == SECRET
    with pytest.raises(SealingError, match="not in DARKROOM_SEALING_KEYS"):
        Sealer(keys(OLD)).open(sealed_after)


def test_a_secret_sealed_with_an_unknown_key_or_tampered_with_is_refused() -> None:
    sealed = Sealer(keys(OLD)).seal(SECRET)
    with pytest.raises(SealingError, match="not in DARKROOM_SEALING_KEYS"):
        Sealer(keys(NEW)).open(sealed)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SealingError):
        Sealer(keys(OLD)).open(tampered)


def test_a_value_stored_before_sealing_is_read_as_it_is() -> None:
    assert Sealer(keys(NEW)).open(SECRET) == SECRET


@pytest.mark.parametrize("given", [None, "", " , ", "change-me", f"{NEW},change-me"])
def test_no_key_or_a_bad_key_is_a_clear_error_at_start(given: str | None) -> None:
    with pytest.raises(SealingError, match="DARKROOM_SEALING_KEYS"):
        Sealer(SecretStr(given) if given is not None else None)


def test_the_module_prints_a_new_key() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "darkroom.common.sealing"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Sealer(keys(made)).open(Sealer(keys(made)).seal(SECRET)) == SECRET
    assert (
        made
        != subprocess.run(
            [sys.executable, "-m", "darkroom.common.sealing"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


def test_the_gateway_and_notify_refuse_to_start_without_a_key() -> None:
    with pytest.raises(SealingError, match="DARKROOM_SEALING_KEYS is not set"):
        gateway(IngestSettings(sealing_keys=None))
    with pytest.raises(SealingError, match="not a Fernet key"):
        notify(NotifySettings(sealing_keys=SecretStr("change-me")))


def test_resealing_ends_a_rotation_and_seals_what_was_stored_in_clear() -> None:
    sealed_before = Sealer(keys(OLD)).seal(SECRET)
    rotated = Sealer(keys(NEW, OLD))
    resealed = rotated.reseal(sealed_before)
    assert Sealer(keys(NEW)).open(resealed) == SECRET  # the old key is no longer needed
    from_clear = rotated.reseal(SECRET)
    assert from_clear.startswith(PREFIX) and Sealer(keys(NEW)).open(from_clear) == SECRET
    with pytest.raises(SealingError, match="not in DARKROOM_SEALING_KEYS"):
        Sealer(keys(NEW)).reseal(Sealer(keys(OLD)).seal(SECRET))


@pytest.mark.parametrize("garbage", [f"{PREFIX}not base64 at all é", f"{PREFIX}", f"{PREFIX}Zm9v"])
def test_a_mangled_sealed_value_is_a_sealing_error_not_a_crash(garbage: str) -> None:
    with pytest.raises(SealingError):
        Sealer(keys(NEW)).open(garbage)
