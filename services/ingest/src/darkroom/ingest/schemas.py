"""What the gateway's HTTP API takes and gives (the OpenAPI document is made from these)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from darkroom.common.events import Classification
from darkroom.ingest.paths import BIDI, CONTROL


def _typed(text: str) -> str:
    """Refuse what no one types: control characters (PostgreSQL keeps no NUL; line breaks and
    escapes break logs, mail headers and what is shown) and bidirectional controls (they
    reorder what is shown)."""
    for pattern, what in ((CONTROL, "control character"), (BIDI, "bidirectional control")):
        if match := pattern.search(text):
            raise PydanticCustomError(
                "unprintable",
                "contains the {what} {char}",
                {"what": what, "char": repr(match.group())},
            )
    return text


Text = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_typed)]
"""Text a person typed (a name, a label, a filter): trimmed, printable."""

RoleName = Literal["viewer", "uploader", "admin"]
FileStatus = Literal["queued", "uploading", "uploaded", "failed", "skipped_duplicate"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Webhook(Strict):
    url: HttpUrl = Field(
        description="Where events are POSTed.", examples=["https://ops.example.org/hook"]
    )
    secret: str = Field(
        min_length=16,
        max_length=200,
        description="Signing secret: `whsec_` and base64 (Standard Webhooks), or any text.",
    )

    @field_validator("secret")
    @classmethod
    def _signable(cls, secret: str) -> str:
        if secret.startswith("whsec_"):
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except binascii.Error:
                key = b""
            if not key:
                raise ValueError("a secret that starts with 'whsec_' must be base64 after it")
        return secret


class ProjectSettings(Strict):
    ceiling: Classification | None = Field(None, description="Highest classification accepted.")
    timezone: str | None = Field(
        None,
        description="IANA zone assumed when a photo gives no offset (and for a catalog filter's"
        " time without one).",
        examples=["Europe/Paris"],
    )
    recipient_emails: list[EmailStr] | None = Field(None, description="Who is told of uploads.")
    webhooks: list[Webhook] | None = Field(None, description="Signed webhooks to call.")
    max_files: int | None = Field(None, gt=0, description="Files per upload (≤ the policy's).")
    max_bytes: int | None = Field(None, gt=0, description="Bytes per upload (≤ the policy's).")
    max_image_bytes: int | None = Field(
        None, gt=0, description="Bytes per PNG, JPEG or GIF (≤ the policy's)."
    )
    digest_minutes: int | None = Field(
        None,
        gt=0,
        le=1440,
        description="Gather the e-mails of sessions finished within this many minutes into one "
        "(none: one e-mail per session).",
        examples=[30],
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None and zone not in available_timezones():
            raise ValueError(f"{zone!r} is not an IANA time zone")
        return zone


class ProjectChange(ProjectSettings):
    """What a PATCH changes: the fields it sends. Only ``digest_minutes`` may be sent as null
    (one e-mail per session again); a null anywhere else would erase a setting that has no
    empty value."""

    @model_validator(mode="after")
    def _no_nulls(self) -> ProjectChange:
        nulls = sorted(
            name
            for name in self.model_fields_set
            if getattr(self, name) is None and name != "digest_minutes"
        )
        if nulls:
            raise PydanticCustomError(
                "null_setting",
                "{fields} cannot be null; leave a setting out to keep it",
                {"fields": ", ".join(nulls)},
            )
        return self


class ProjectCreate(ProjectSettings):
    name: Text = Field(min_length=1, max_length=200, description="The project's name.")
    policy: Literal["capture", "library"] = Field(description="Which upload policy applies.")


class Project(BaseModel):
    id: uuid.UUID
    name: str
    policy: str
    ceiling: Classification
    timezone: str
    max_files: int
    max_bytes: int
    max_image_bytes: int
    digest_minutes: int | None
    recipient_emails: list[str]
    webhooks: list[str] = Field(description="Webhook URLs (secrets are never shown).")


class KeyCreate(Strict):
    role: RoleName = Field(description="What the key may do.", examples=["uploader"])
    label: Text = Field("", max_length=200, description="A note on who holds it.")


class Key(BaseModel):
    id: uuid.UUID
    key: str = Field(description="The secret: shown this once, stored only as a hash.")
    role: RoleName
    projects: list[uuid.UUID]


class SessionCreate(Strict):
    source: Text = Field(
        min_length=1, max_length=200, description="Source of upload.", examples=["drone"]
    )
    view_name: Text = Field(
        min_length=1, max_length=200, description="View name.", examples=["North facade"]
    )
    capture_date: date = Field(description="When the media were captured.", examples=["2024-05-17"])
    classification: Classification = Field(Classification.UNCLASSIFIED)
    ai_tagging: bool = Field(False, description="Whether AI tags are made.")
    uploader_email: EmailStr | None = Field(None, description="Who to tell of the outcome.")


class Counts(BaseModel):
    queued: int = 0
    uploading: int = 0
    uploaded: int = 0
    failed: int = 0
    skipped_duplicate: int = 0
    bytes_total: int = 0
    bytes_received: int = 0


class Session(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    source: str
    view_name: str
    capture_date: date
    classification: Classification
    ai_tagging: bool
    uploader_email: str | None
    created_at: datetime
    submitted_at: datetime | None
    processed_at: datetime | None = Field(
        None, description="When every step had answered for every medium of the session."
    )
    counts: Counts
    progress: float = Field(description="Share of the session's bytes received, 0 to 1.")


class PlannedFile(Strict):
    path: str = Field(min_length=1, max_length=4096, description="Relative path, folders included.")
    size: int = Field(ge=0, le=2**63 - 1, description="Size in bytes.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256, if known.")
    classification: Classification | None = Field(None, description="The file's own level, if any.")


class Batch(Strict):
    files: list[PlannedFile] = Field(description="The files to add.")


class FileEntry(BaseModel):
    index: int = Field(description="Position in the request.")
    path: str
    id: uuid.UUID | None = None
    status: FileStatus | Literal["refused"]
    code: str | None = None
    message: str | None = None
    duplicate_of: str | None = Field(None, description="Path of the file this one repeats.")


class BatchResult(BaseModel):
    files: list[FileEntry]
    queued: int
    skipped: int
    refused: int


class File(BaseModel):
    id: uuid.UUID
    path: str
    status: FileStatus
    size: int
    received_bytes: int
    sha256: str | None
    content_type: str | None
    code: str | None
    reason: str | None
    duplicate_of: uuid.UUID | None
    attempts: int


class SessionDetail(Session):
    files: list[File]


class Precheck(BaseModel):
    files: list[FileEntry]
    duplicates: int
    refused: int


class Submitted(BaseModel):
    session_id: uuid.UUID
    sent: int = Field(description="Files sent on to processing.")
    failed: int
    skipped: int
