"""The v1 events of Darkroom: one pydantic model per topic, and the catalog built from them.

Every event travels as a CloudEvents 1.0 record in Kafka's binary mode: the attributes are
record headers (``ce_id``, ``ce_type``, ...), the body is the model's JSON, and the record key
is the media id (the session id for session events) so one medium's events stay ordered.
A topic's name carries its version; inside a version, changes are additive only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CE_SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class Classification(StrEnum):
    """Classification levels, lowest first."""

    UNCLASSIFIED = "UNCLASSIFIED"
    RESTRICTED = "RESTRICTED"
    SENSITIVE_NORMAL = "SENSITIVE_NORMAL"


WIRE = ConfigDict(extra="ignore", frozen=True)
"""Every model of an event's body: a field it does not know is ignored, not refused, so that a
field added within a version (additive changes only) reaches consumers not yet upgraded
instead of sending every event to their dead letters. Constructors still refuse unknown
names: mypy's pydantic plugin checks them (``init_forbid_extra``)."""


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


class Event(BaseModel):
    """Base of every event body. Subclasses name their topic and CloudEvents type."""

    model_config = WIRE

    topic: ClassVar[str]
    ce_type: ClassVar[str]
    producer: ClassVar[str]
    consumers: ClassVar[tuple[str, ...]]

    def key(self) -> str:
        """The record key: what keeps related events in order on one partition."""
        raise NotImplementedError


class MediaRef(BaseModel):
    """The small reference every media event repeats, so no consumer has to ask anyone."""

    model_config = WIRE

    media_id: uuid.UUID = Field(
        description="The medium's id.", examples=["6f1c2b1e-8d3a-4c57-9a0b-1f2e3d4c5b6a"]
    )
    project_id: uuid.UUID = Field(
        description="The project the medium belongs to.",
        examples=["0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f"],
    )
    session_id: uuid.UUID = Field(
        description="The upload session the medium came in.",
        examples=["9d8c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d"],
    )
    object_key: str = Field(
        description=(
            "Key of the original in the originals bucket, built from ids and the number of the"
            " upload attempt that stored it; read it from here, never rebuild it."
        ),
        examples=[
            "0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f/6f1c2b1e-8d3a-4c57-9a0b-1f2e3d4c5b6a/original"
        ],
    )
    relative_path: str = Field(
        description="The file's normalised relative path as uploaded, folders included.",
        examples=["Project A/Camera B/2024/image.jpg"],
    )
    ai_tagging: bool = Field(
        description="Whether the upload switched AI tagging on.", examples=[True]
    )
    classification: Classification = Field(
        description="The classification the upload declared.", examples=["UNCLASSIFIED"]
    )


class MediaEvent(Event):
    media: MediaRef = Field(description="The medium this event is about.")

    def key(self) -> str:
        return str(self.media.media_id)


class MediaUploaded(MediaEvent):
    """A medium's original is stored and ready to be processed."""

    topic: ClassVar[str] = "darkroom.media.uploaded.v1"
    ce_type: ClassVar[str] = "darkroom.media.uploaded"
    producer: ClassVar[str] = "ingest"
    consumers: ClassVar[tuple[str, ...]] = ("metadata", "dedup", "tagging")

    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the original's bytes, lower-case hex.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    size: int = Field(ge=0, description="Size of the original in bytes.", examples=[4_718_592])
    content_type: str = Field(
        description="Media type sniffed from the first bytes.", examples=["image/jpeg"]
    )
    session_capture_date: date = Field(
        description="The capture date the session declared; used when a file has none.",
        examples=["2024-05-17"],
    )
    project_timezone: str = Field(
        description="IANA time zone of the project, assumed when a photo gives no offset.",
        examples=["Europe/Paris"],
    )
    source: str = Field(description="The session's source of upload.", examples=["drone"])
    view_name: str = Field(description="The session's view name.", examples=["North facade"])
    uploaded_at: datetime = Field(
        description="When the original was stored (UTC).", examples=["2024-05-17T09:30:00Z"]
    )


class MediaReprocess(MediaUploaded):
    """A medium to process again, on the low-priority lane so backfills never delay uploads."""

    topic: ClassVar[str] = "darkroom.media.reprocess.v1"
    ce_type: ClassVar[str] = "darkroom.media.reprocess"


class StepResult(MediaEvent):
    """Base of a processing step's result: ``ok``, or ``failed`` with a reason."""

    producer: ClassVar[str]
    consumers: ClassVar[tuple[str, ...]] = ("ingest",)

    outcome: Outcome = Field(description="Whether the step succeeded.", examples=["ok"])
    reason_code: str | None = Field(
        None,
        description="Machine-readable reason when the step failed.",
        examples=["unreadable_image"],
    )
    reason: str | None = Field(
        None,
        description="One sentence a person can read when the step failed.",
        examples=["The image data is truncated after 1,024 bytes."],
    )


class GeoPoint(BaseModel):
    model_config = WIRE

    latitude: float = Field(ge=-90, le=90, description="Decimal degrees.", examples=[48.8584])
    longitude: float = Field(ge=-180, le=180, description="Decimal degrees.", examples=[2.2945])
    altitude: float | None = Field(None, description="Metres above sea level.", examples=[35.0])


OffsetSource = Literal["exif", "gps_timezone", "project_timezone", "session_date", "video"]
"""Where a capture time's UTC offset came from."""


class MediaMetadata(StepResult):
    """What the metadata service read from a medium, or why it could not."""

    topic: ClassVar[str] = "darkroom.media.metadata.v1"
    ce_type: ClassVar[str] = "darkroom.media.metadata"
    producer: ClassVar[str] = "metadata"

    captured_at: datetime | None = Field(
        None,
        description="Capture date-time with its UTC offset.",
        examples=["2024-05-17T11:30:00+02:00"],
    )
    offset_source: OffsetSource | None = Field(
        None, description="Where the UTC offset came from.", examples=["exif"]
    )
    make: str | None = Field(None, description="Camera make.", examples=["Canon"])
    model: str | None = Field(None, description="Camera model.", examples=["Canon EOS 5D"])
    lens: str | None = Field(None, description="Lens model.", examples=["EF24-105mm f/4L IS USM"])
    orientation: int | None = Field(
        None, ge=1, le=8, description="EXIF orientation (1-8).", examples=[6]
    )
    width: int | None = Field(
        None, ge=1, description="Pixel width after orientation.", examples=[3000]
    )
    height: int | None = Field(
        None, ge=1, description="Pixel height after orientation.", examples=[4000]
    )
    gps: GeoPoint | None = Field(None, description="Where the medium was captured.")
    country_code: str | None = Field(None, description="ISO 3166-1 alpha-2.", examples=["FR"])
    country: str | None = Field(None, description="Country name.", examples=["France"])
    region: str | None = Field(None, description="Region or state.", examples=["Île-de-France"])
    duration_seconds: float | None = Field(
        None, ge=0, description="Duration of a video.", examples=[12.5]
    )
    thumbnail_key: str | None = Field(
        None,
        description="Key of the 256 px thumbnail in the derived bucket.",
        examples=[
            "0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f/6f1c2b1e-8d3a-4c57-9a0b-1f2e3d4c5b6a/thumb.webp"
        ],
    )
    preview_key: str | None = Field(
        None,
        description="Key of the 1440 px preview in the derived bucket.",
        examples=[
            "0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f/6f1c2b1e-8d3a-4c57-9a0b-1f2e3d4c5b6a/preview.webp"
        ],
    )


class MediaDuplicates(StepResult):
    """The duplicate group a medium joined, if any."""

    topic: ClassVar[str] = "darkroom.media.duplicates.v1"
    ce_type: ClassVar[str] = "darkroom.media.duplicates"
    producer: ClassVar[str] = "dedup"

    group_id: uuid.UUID | None = Field(
        None,
        description="The duplicate group, when the medium has duplicates.",
        examples=["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"],
    )
    closest_media_id: uuid.UUID | None = Field(
        None,
        description="The most similar other member.",
        examples=["2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"],
    )
    similarity: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of the perceptual-hash bits that agree: 1.0 for the same bytes "
        "(and for a copy whose hashes all agree), lower for near duplicates.",
        examples=[0.97],
    )
    exact: bool = Field(
        False, description="Whether the closest member has the same bytes.", examples=[False]
    )


class TagSource(StrEnum):
    FOLDER = "folder"
    SESSION = "session"
    AI_FACE = "ai.face"
    AI_SAFETY = "ai.safety"
    USER = "user"


class Tag(BaseModel):
    model_config = WIRE

    name: str = Field(description="The tag as shown.", examples=["Camera B"])
    source: TagSource = Field(description="Where the tag came from.", examples=["folder"])


class Face(BaseModel):
    """A face found in a medium, and the person it belongs to."""

    model_config = WIRE

    face_id: uuid.UUID = Field(
        description="The face, for a user's correction.",
        examples=["5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"],
    )
    person_id: uuid.UUID | None = Field(
        None,
        description="The person it belongs to; none after a user removed it from one.",
        examples=["3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"],
    )
    person_name: str | None = Field(
        None, description="The person's name, once a user gave one.", examples=["Ada"]
    )
    box: tuple[float, float, float, float] = Field(
        description="Left, top, right, bottom, as shares (0-1) of the upright picture.",
        examples=[[0.41, 0.2, 0.58, 0.45]],
    )


class MediaTags(StepResult):
    """The complete set of a medium's tags (a later event replaces an earlier one)."""

    topic: ClassVar[str] = "darkroom.media.tags.v1"
    ce_type: ClassVar[str] = "darkroom.media.tags"
    producer: ClassVar[str] = "tagging"

    tags: list[Tag] = Field(default_factory=list, description="Every tag of the medium.")
    faces: list[Face] = Field(
        default_factory=list, description="The faces found, when AI tagging was on."
    )


class FileOutcome(BaseModel):
    model_config = WIRE

    relative_path: str = Field(description="The file as uploaded.", examples=["2024/a.jpg"])
    reason: str = Field(description="Why it failed.", examples=["Not a JPEG file."])


class WebhookTarget(BaseModel):
    model_config = WIRE

    url: str = Field(description="Where to POST.", examples=["https://hooks.example.org/darkroom"])
    secret: str = Field(
        description="The Standard Webhooks signing secret (``whsec_`` and base64, or raw text),"
        " sealed with the platform's sealing key (``darkroom.common.sealing``).",
        examples=["sealed:gAAAAABpJ0V1c2VkLWluLWV4YW1wbGVzLW9ubHk="],
    )


# A session event names at most this many failed files; ``failed_count`` counts them all (a
# session's every failure is in the gateway's API). 1,500 failures with long paths would pass
# Kafka's 1 MB; this many stay under half of it.
FAILED_LISTED = 100
# And at most this many of the tags and of the persons found (tags of 255 bytes: 50 KB each).
NAMES_LISTED = 200


class SessionEvent(Event):
    session_id: uuid.UUID = Field(
        description="The upload session.", examples=["9d8c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d"]
    )
    project_id: uuid.UUID = Field(
        description="Its project.", examples=["0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f"]
    )
    view_name: str = Field(description="The session's view name.", examples=["North facade"])
    source: str = Field(description="The session's source of upload.", examples=["drone"])
    uploader_email: str | None = Field(
        None, description="Who uploaded, to be told.", examples=["ana@example.org"]
    )
    recipients: list[str] = Field(
        default_factory=list,
        description="The project's notification e-mail addresses.",
        examples=[["ops@example.org"]],
    )
    webhooks: list[WebhookTarget] = Field(
        default_factory=list, description="The project's webhooks, to be called signed."
    )
    digest_minutes: int | None = Field(
        None,
        gt=0,
        description="The project gathers the e-mails of sessions finished within this many "
        "minutes into one; none for one e-mail per session.",
        examples=[30],
    )

    failed: list[FileOutcome] = Field(
        default_factory=list,
        description=f"What failed, with reasons (files at upload for a submitted session, media"
        f" at a processing step for a processed one): the first {FAILED_LISTED}.",
    )
    failed_count: int = Field(
        0, ge=0, description="How many failed in all, listed or not.", examples=[3]
    )

    listed: ClassVar[dict[str, int]] = {"failed": FAILED_LISTED}
    """The lists cut to their first so many; ``<list>_count`` counts them all."""

    @model_validator(mode="before")
    @classmethod
    def _list_the_first(cls, data: Any) -> Any:
        """Keep the first entries of each list ``listed`` names, and count them all (a count
        given with them is the count, if it is not fewer than the list)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, most in cls.listed.items():
            if isinstance(entries := data.get(name), list):
                data[f"{name}_count"] = max(data.get(f"{name}_count") or 0, len(entries))
                data[name] = entries[:most]
        return data

    def key(self) -> str:
        return str(self.session_id)


class SessionSubmitted(SessionEvent):
    """A session was submitted: its uploaded files go to processing."""

    topic: ClassVar[str] = "darkroom.session.submitted.v1"
    ce_type: ClassVar[str] = "darkroom.session.submitted"
    producer: ClassVar[str] = "ingest"
    consumers: ClassVar[tuple[str, ...]] = ("notify",)

    uploaded: int = Field(ge=0, description="Files uploaded.", examples=[97])
    skipped: int = Field(ge=0, description="Duplicates skipped.", examples=[2])


class SessionProcessed(SessionEvent):
    """Every medium of a submitted session has finished every processing step."""

    topic: ClassVar[str] = "darkroom.session.processed.v1"
    ce_type: ClassVar[str] = "darkroom.session.processed"
    producer: ClassVar[str] = "ingest"
    consumers: ClassVar[tuple[str, ...]] = ("notify",)

    processed: int = Field(ge=0, description="Media processed.", examples=[97])
    duplicates: int = Field(ge=0, description="Media found to have duplicates.", examples=[4])
    tags: list[str] = Field(
        default_factory=list,
        description=f"Distinct tags given: the first {NAMES_LISTED}.",
        examples=[["Camera B", "2024"]],
    )
    tags_count: int = Field(0, ge=0, description="How many distinct tags in all.", examples=[2])
    persons: list[str] = Field(
        default_factory=list,
        description=f"Named persons recognised: the first {NAMES_LISTED}.",
        examples=[["Ada"]],
    )
    persons_count: int = Field(0, ge=0, description="How many named persons in all.", examples=[1])

    listed: ClassVar[dict[str, int]] = {
        **SessionEvent.listed,
        "tags": NAMES_LISTED,
        "persons": NAMES_LISTED,
    }
    countries: list[str] = Field(
        default_factory=list, description="Country codes seen.", examples=[["FR", "DE"]]
    )


class NotDuplicate(BaseModel):
    model_config = WIRE

    kind: Literal["not_duplicate"] = Field(
        "not_duplicate", description="Which command.", examples=["not_duplicate"]
    )
    media_id: uuid.UUID = Field(
        description="One medium.", examples=["6f1c2b1e-8d3a-4c57-9a0b-1f2e3d4c5b6a"]
    )
    other_media_id: uuid.UUID = Field(
        description="The medium it is not a duplicate of.",
        examples=["2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"],
    )


class DedupCommand(Event):
    """A user's review decision, forwarded by the gateway."""

    topic: ClassVar[str] = "darkroom.dedup.commands.v1"
    ce_type: ClassVar[str] = "darkroom.dedup.command"
    producer: ClassVar[str] = "ingest"
    consumers: ClassVar[tuple[str, ...]] = ("dedup",)

    project_id: uuid.UUID = Field(
        description="The project.", examples=["0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f"]
    )
    command: NotDuplicate = Field(description="What the user decided.")

    def key(self) -> str:
        return str(self.project_id)


class NamePerson(BaseModel):
    model_config = WIRE

    kind: Literal["name_person"] = Field(
        "name_person", description="Which command.", examples=["name_person"]
    )
    person_id: uuid.UUID = Field(
        description="The person.", examples=["3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"]
    )
    name: str = Field(min_length=1, max_length=200, description="Their name.", examples=["Ada"])


class MergePersons(BaseModel):
    model_config = WIRE

    kind: Literal["merge_persons"] = Field(
        "merge_persons", description="Which command.", examples=["merge_persons"]
    )
    person_id: uuid.UUID = Field(
        description="The person kept.", examples=["3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"]
    )
    other_person_id: uuid.UUID = Field(
        description="The person merged into it.", examples=["4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a"]
    )


class RemoveFace(BaseModel):
    model_config = WIRE

    kind: Literal["remove_face"] = Field(
        "remove_face", description="Which command.", examples=["remove_face"]
    )
    face_id: uuid.UUID = Field(
        description="The wrongly assigned face.", examples=["5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"]
    )


class TaggingCommand(Event):
    """A user's correction of persons, forwarded by the gateway."""

    topic: ClassVar[str] = "darkroom.tagging.commands.v1"
    ce_type: ClassVar[str] = "darkroom.tagging.command"
    producer: ClassVar[str] = "ingest"
    consumers: ClassVar[tuple[str, ...]] = ("tagging",)

    project_id: uuid.UUID = Field(
        description="The project.", examples=["0b7e4a52-2f7d-4c3e-8e61-2a9d8c7b6e5f"]
    )
    command: Annotated[NamePerson | MergePersons | RemoveFace, Field(discriminator="kind")] = Field(
        description="What the user asked."
    )

    def key(self) -> str:
        return str(self.project_id)


CATALOG: tuple[type[Event], ...] = (
    MediaUploaded,
    MediaReprocess,
    MediaMetadata,
    MediaDuplicates,
    MediaTags,
    SessionSubmitted,
    SessionProcessed,
    DedupCommand,
    TaggingCommand,
)
SERVICES = ("ingest", "metadata", "dedup", "tagging", "notify")


def dlq_topic(service: str) -> str:
    return f"darkroom.dlq.{service}"


def all_topics() -> list[str]:
    return [event.topic for event in CATALOG] + [dlq_topic(s) for s in SERVICES]


def cloudevent_headers(event: Event, *, source: str) -> dict[str, str]:
    """CloudEvents 1.0 binary-mode attributes for one event, as Kafka record headers."""
    return {
        "ce_specversion": CE_SPEC_VERSION,
        "ce_id": str(uuid.uuid4()),
        "ce_type": event.ce_type,
        "ce_source": source,
        "ce_time": datetime.now(UTC).isoformat(),
        "ce_subject": event.key(),
        "content-type": CONTENT_TYPE,
    }


def catalog_markdown() -> str:
    """The topic catalog, generated from the models (docs/topics.md is this text)."""
    lines = [
        "# Topic catalog",
        "",
        "Generated from `darkroom.common.events` by `uv run python -m darkroom.common.docs`;",
        "do not edit by hand.",
        "",
        "| topic | CloudEvents type | key | producer | consumers | body |",
        "|---|---|---|---|---|---|",
    ]
    for event in CATALOG:
        key = (
            "media id"
            if issubclass(event, MediaEvent)
            else ("session id" if issubclass(event, SessionEvent) else "project id")
        )
        lines.append(
            f"| `{event.topic}` | `{event.ce_type}` | {key} | {event.producer} "
            f"| {', '.join(event.consumers)} | `{event.__name__}` |"
        )
    for service in SERVICES:
        lines.append(
            f"| `{dlq_topic(service)}` | (original's) | (original's) | {service} | operators "
            "| the original record, with `dlq_*` origin headers |"
        )
    lines += ["", "## Bodies", ""]
    for event in CATALOG:
        lines += [
            f"### `{event.__name__}` — `{event.topic}`",
            "",
            (event.__doc__ or "").strip(),
            "",
        ]
        lines += ["| field | type | description | example |", "|---|---|---|---|"]
        schema = event.model_json_schema()
        for name, prop in schema["properties"].items():
            info = event.model_fields[name]
            example = info.examples[0] if info.examples else ""
            kind = prop.get("type") or prop.get("$ref", "").split("/")[-1] or "object"
            lines.append(f"| `{name}` | {kind} | {info.description or ''} | `{example}` |")
        lines.append("")
    return "\n".join(lines)
