"""Secrets Darkroom keeps in order to use them again — webhook signing secrets — are sealed
with the platform's sealing key wherever they rest or travel (the gateway's and notify's
databases, the session events on Kafka) and opened only where they are used: notify, signing
a request.

``DARKROOM_SEALING_KEYS`` holds Fernet keys, comma-separated (``python -m
darkroom.common.sealing`` prints a new one). The first seals; any of them opens. To rotate:
put a new key first (both services), run ``python -m darkroom.ingest.admin reseal`` (every
stored webhook secret sealed again with it), and drop the old key once notify has nothing
pending from before (``DARKROOM_NOTIFY_RETRY_FOR_SECONDS``, a day). Secrets stored before
sealing existed are read as they are, and sealed by ``reseal`` or when their project is saved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

PREFIX = "sealed:"
"""What a sealed value starts with; a value without it was stored before sealing existed."""


class SealingError(Exception):
    """A sealed value that none of the keys opens, or keys that are not keys."""


class Sealer:
    def __init__(self, keys: SecretStr | None) -> None:
        listed = [k.strip() for k in (keys.get_secret_value() if keys else "").split(",")]
        listed = [k for k in listed if k]
        if not listed:
            raise SealingError(
                "DARKROOM_SEALING_KEYS is not set: the gateway and notify need the platform's"
                " sealing key (make one with `python -m darkroom.common.sealing`)."
            )
        try:
            self._fernet = MultiFernet([Fernet(key) for key in listed])
        except ValueError:
            raise SealingError(
                "DARKROOM_SEALING_KEYS holds something that is not a Fernet key (32 bytes,"
                " URL-safe base64; make one with `python -m darkroom.common.sealing`)."
            ) from None

    def seal(self, secret: str) -> str:
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def reseal(self, value: str) -> str:
        """``value`` sealed with the first key, whichever key (or none) sealed it before."""
        if not value.startswith(PREFIX):
            return self.seal(value)
        with _unknown_key():
            return PREFIX + self._fernet.rotate(value.removeprefix(PREFIX)).decode()

    def open(self, value: str) -> str:
        if not value.startswith(PREFIX):
            return value  # stored before sealing: `admin reseal` or a save of its project seals it
        with _unknown_key():
            return self._fernet.decrypt(value.removeprefix(PREFIX)).decode()


@contextmanager
def _unknown_key() -> Iterator[None]:
    """A token no key opens (or not even base64, a ``ValueError``) is a ``SealingError``."""
    try:
        yield
    except (InvalidToken, ValueError):
        raise SealingError(
            "a secret sealed with a key that is not in DARKROOM_SEALING_KEYS"
        ) from None


if __name__ == "__main__":
    print(Fernet.generate_key().decode())
