"""Writes the generated documents: the topic catalog and each service's AsyncAPI document.

``uv run python -m darkroom.common.docs [folder]`` (default ``docs/``); a unit test checks that
the committed copies are current.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from faststream.specification import AsyncAPI
from pydantic import SecretStr

from darkroom.common.events import SERVICES, catalog_markdown
from darkroom.common.settings import SERVICE_SETTINGS, SealingSettings, ServiceSettings


def asyncapi(service: str) -> str:
    """The AsyncAPI 3.0 document of one service, as JSON."""
    [settings] = [s for s in SERVICE_SETTINGS if s.service == service]
    # Describing a service's events needs no secret: a throwaway key lets the services that
    # hold webhook secrets be built.
    built: ServiceSettings = (
        settings(sealing_keys=SecretStr(Fernet.generate_key().decode()))
        if issubclass(settings, SealingSettings)
        else settings()
    )
    runtime = importlib.import_module(f"darkroom.{service}.app").create_runtime(built)
    spec = AsyncAPI(
        runtime.broker,
        title=f"darkroom-{service}",
        version="1",
        description=f"The events the Darkroom {service} service consumes and publishes.",
    )
    return json.dumps(spec.to_specification().to_jsonable(), indent=2, sort_keys=True) + "\n"


def documents() -> dict[str, str]:
    docs = {"topics.md": catalog_markdown() + "\n"}
    for service in SERVICES:
        docs[f"asyncapi/{service}.json"] = asyncapi(service)
    return docs


def main(folder: Path) -> None:
    for name, text in documents().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
