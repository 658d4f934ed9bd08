"""The event models: documented, versioned, and their generated documents current."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from darkroom.common.docs import documents
from darkroom.common.events import (
    CATALOG,
    FAILED_LISTED,
    NAMES_LISTED,
    Event,
    FileOutcome,
    MediaRef,
    MediaUploaded,
    SessionProcessed,
    SessionSubmitted,
    TaggingCommand,
    cloudevent_headers,
)

ROOT = Path(__file__).resolve().parents[2]


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every model nested in its fields."""
    found = [model]
    for field in model.model_fields.values():
        for inner in [field.annotation, *_args(field.annotation)]:
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found += _models(inner)
    return found


@pytest.mark.parametrize("event", CATALOG, ids=lambda e: e.__name__)
def test_every_field_has_a_description_and_an_example(event: type[Event]) -> None:
    """The AsyncAPI documents and the catalog are only worth reading if this holds."""
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _models(event)
        for name, field in model.model_fields.items()
        if not field.description or (not field.examples and not _holds_models(field.annotation))
    ]
    assert undocumented == []


def _holds_models(annotation: object) -> bool:
    """Fields holding models (or lists of them) are documented by those models' fields."""
    return any(
        isinstance(inner, type) and issubclass(inner, BaseModel)
        for inner in [annotation, *_args(annotation)]
    )


def _args(annotation: object) -> list[object]:
    args = list(getattr(annotation, "__args__", ()))
    return args + [inner for arg in args for inner in _args(arg)]


@pytest.mark.parametrize("event", CATALOG, ids=lambda e: e.__name__)
def test_topics_are_versioned_and_named_after_what_they_carry(event: type[Event]) -> None:
    parts = event.topic.split(".")
    assert parts[0] == "darkroom" and parts[-1] == "v1" and len(parts) == 4


def test_topic_names_are_unique() -> None:
    topics = [event.topic for event in CATALOG]
    assert len(topics) == len(set(topics))


def _ref() -> MediaRef:
    return MediaRef(
        media_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        object_key="p/m/original",
        relative_path="A/B/c.jpg",
        ai_tagging=False,
        classification="UNCLASSIFIED",
    )


def _uploaded() -> MediaUploaded:
    return MediaUploaded(
        media=_ref(),
        sha256="0" * 64,
        size=1,
        content_type="image/jpeg",
        session_capture_date="2024-05-17",
        project_timezone="Europe/Paris",
        source="drone",
        view_name="North",
        uploaded_at="2024-05-17T09:30:00Z",
    )


def test_cloudevent_headers_carry_the_attributes_of_binary_mode() -> None:
    event = _uploaded()
    ref = event.media
    headers = cloudevent_headers(event, source="darkroom/ingest")
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "darkroom.media.uploaded"
    assert headers["ce_source"] == "darkroom/ingest"
    assert headers["ce_subject"] == str(ref.media_id) == event.key()
    assert uuid.UUID(headers["ce_id"])
    assert headers["content-type"] == "application/json"
    assert headers["ce_id"] != cloudevent_headers(event, source="darkroom/ingest")["ce_id"]


def test_an_event_from_a_newer_producer_is_read_its_added_fields_ignored() -> None:
    """Additive changes within a version: a producer upgraded first adds a field (here, to the
    event and to its medium's reference); a consumer not yet upgraded reads the event as it
    knows it, rather than sending every one to its dead letters. (Our own code cannot name a
    field an event lacks: mypy refuses it.)"""
    event = _uploaded()
    newer = event.model_dump(mode="json")
    newer["media"]["checksum_crc32c"] = "AAAAAA=="
    newer["camera_hint"] = {"make": "Fujifilm"}
    assert MediaUploaded.model_validate_json(json.dumps(newer)) == event


def test_commands_are_told_apart_by_kind() -> None:
    command = TaggingCommand.model_validate(
        {
            "project_id": str(uuid.uuid4()),
            "command": {"kind": "name_person", "person_id": str(uuid.uuid4()), "name": "Ada"},
        }
    )
    assert command.command.kind == "name_person"
    with pytest.raises(ValidationError):
        TaggingCommand.model_validate(
            {"project_id": str(uuid.uuid4()), "command": {"kind": "launch_rocket"}}
        )


@pytest.mark.parametrize("name", sorted(documents()))
def test_generated_documents_are_current(name: str) -> None:
    """docs/ is generated: `uv run python -m darkroom.common.docs` after changing an event."""
    committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert committed == documents()[name]
    if name.endswith(".json"):
        assert json.loads(committed)["asyncapi"] == "3.0.0"


def _session() -> dict[str, Any]:
    """What every session event says of its session."""
    return {"session_id": uuid.uuid4(), "project_id": uuid.uuid4(), "view_name": "v", "source": "s"}


def test_a_session_event_names_the_first_failures_and_stays_far_under_kafkas_limit() -> None:
    """1,500 failed files at the longest paths the gateway takes (1,024 characters, here of
    two bytes each): the event names the first FAILED_LISTED, counts them all, and stays under
    half of Kafka's 1 MB."""
    failed = [
        FileOutcome(relative_path=f"{n:04d}" + "é" * 1020, reason="The upload stopped. " * 10)
        for n in range(1500)
    ]
    event = SessionSubmitted(
        **_session(),
        uploaded=0,
        skipped=0,
        failed=failed,
    )
    assert event.failed_count == 1500 and event.failed == failed[:FAILED_LISTED]
    assert len(event.model_dump_json().encode()) < 500_000
    read = SessionSubmitted.model_validate_json(event.model_dump_json())  # as notify reads it
    assert read == event
    given = SessionSubmitted.model_validate({**event.model_dump(), "failed": failed[:150]})
    assert (len(given.failed), given.failed_count) == (FAILED_LISTED, 1500)
    fewer = SessionSubmitted.model_validate({**event.model_dump(), "failed_count": 3})
    assert fewer.failed_count == FAILED_LISTED  # never fewer than it names


def test_a_processed_session_names_the_first_tags_and_persons_and_counts_them_all() -> None:
    """1,500 media, each in folders of their own (tags of 255 bytes) and with named persons of
    200 characters: the processed event names the first of each, counts them all, and stays
    under half of Kafka's 1 MB with its failures at their longest too."""
    tags = [f"{n:04d}" + "é" * 125 for n in range(4500)]
    persons = [f"{n:04d}" + "é" * 196 for n in range(600)]
    failed = [FileOutcome(relative_path="é" * 1024, reason="Unreadable. " * 20)] * 1500
    event = SessionProcessed(
        **_session(),
        processed=1500,
        duplicates=0,
        tags=tags,
        persons=persons,
        failed=failed,
    )
    assert (event.tags, event.tags_count) == (tags[:NAMES_LISTED], 4500)
    assert (event.persons, event.persons_count) == (persons[:NAMES_LISTED], 600)
    assert event.failed_count == 1500
    assert len(event.model_dump_json().encode()) < 500_000
    assert SessionProcessed.model_validate_json(event.model_dump_json()) == event
