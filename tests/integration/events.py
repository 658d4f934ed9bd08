"""A throw-away event type on a topic of its own, so tests never meet each other's records."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import Field

from darkroom.common.events import Event


def ping_event(unique: str) -> type[Event]:
    class Ping(Event):
        """A test event."""

        topic: ClassVar[str] = f"darkroom.test.ping.{unique}"
        ce_type: ClassVar[str] = "darkroom.test.ping"
        producer: ClassVar[str] = "probe"
        consumers: ClassVar[tuple[str, ...]] = ("probe",)

        media_id: uuid.UUID = Field(description="A medium.", examples=[uuid.uuid4()])
        seq: int = Field(description="Order of sending.", examples=[1])

        def key(self) -> str:
            return str(self.media_id)

    return Ping
