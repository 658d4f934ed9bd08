"""API keys: made once, shown once, stored as a SHA-256 of the secret, checked per request."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from enum import IntEnum

from darkroom.ingest.errors import Refused, not_found

PREFIX = "drk_"


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    viewer = 1
    uploader = 2
    admin = 3


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """Keys are 256 random bits: a plain SHA-256 is as strong as a slow hash here, and fast."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    key_id: uuid.UUID
    role: Role
    platform_admin: bool
    projects: frozenset[uuid.UUID]

    def require(self, project_id: uuid.UUID, role: Role) -> None:
        """Refuse unless this key may act on ``project_id`` with ``role``.

        A project the key is not bound to is answered as one that does not exist.
        """
        if self.platform_admin:
            return
        if project_id not in self.projects:
            raise not_found("project")
        if self.role < role:
            raise Refused(
                "forbidden",
                f"This key's role ({self.role.name}) may not do this; it needs {role.name}.",
                403,
            )

    def require_platform_admin(self) -> None:
        if not self.platform_admin:
            raise Refused("forbidden", "Only a platform administrator key may do this.", 403)
