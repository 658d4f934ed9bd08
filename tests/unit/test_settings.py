"""Settings: each service's own values come from its own variables, or from arguments."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from darkroom.common.events import FAILED_LISTED
from darkroom.common.settings import (
    SERVICE_SETTINGS,
    CommonSettings,
    IngestSettings,
    NotifySettings,
    env_names,
)


def test_a_service_reads_its_own_database_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DARKROOM_INGEST_DATABASE_URL", "postgresql://x@db/ingest")
    monkeypatch.setenv("DARKROOM_NOTIFY_DATABASE_URL", "postgresql://x@db/notify")
    monkeypatch.setenv("DARKROOM_INGEST_HTTP_PORT", "9100")
    monkeypatch.setenv("DARKROOM_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    ingest, notify = IngestSettings(), NotifySettings()
    assert (ingest.database_url, ingest.http_port) == ("postgresql://x@db/ingest", 9100)
    assert (notify.database_url, notify.http_port) == ("postgresql://x@db/notify", 8004)
    assert ingest.kafka_bootstrap_servers == notify.kafka_bootstrap_servers == "kafka:9092"


def test_arguments_win_over_defaults_for_every_field() -> None:
    """Tests and tools build settings from arguments; an alias must not swallow them."""
    settings = IngestSettings(database_url="postgresql://x@db/other", http_port=1234)
    assert (settings.database_url, settings.http_port) == ("postgresql://x@db/other", 1234)


@pytest.mark.parametrize("settings", SERVICE_SETTINGS, ids=lambda s: s.service)
def test_every_variable_is_prefixed_and_distinct(settings: type[IngestSettings]) -> None:
    names = env_names(settings)
    assert all(name.startswith("DARKROOM_") for name in names)
    assert len(names) == len(set(names))
    assert f"DARKROOM_{settings.service.upper()}_DATABASE_URL" in names


@pytest.mark.parametrize(
    ("variables", "told"),
    [
        (
            {"DARKROOM_NOTIFY_UNCONFIRMED_AFTER_SECONDS": "29"},
            "DARKROOM_NOTIFY_UNCONFIRMED_AFTER_SECONDS (29) must be at least twice as long as a"
            " send may take (15 s",
        ),
        (
            {"DARKROOM_NOTIFY_SMTP_TIMEOUT_SECONDS": "30"},
            "must be shorter than DARKROOM_SHUTDOWN_GRACE_SECONDS (20)",
        ),
        (
            {"DARKROOM_SHUTDOWN_GRACE_SECONDS": "10"},
            "must be shorter than DARKROOM_SHUTDOWN_GRACE_SECONDS (10)",
        ),
    ],
)
def test_notify_refuses_timeouts_that_would_send_twice(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], told: str
) -> None:
    """A send longer than its claim, or than a stop's grace, would go twice in normal running:
    the service does not start, and says which setting to change."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=re.escape(told)):
        NotifySettings()


def test_notify_refuses_to_promise_more_failed_files_than_an_event_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An e-mail can name only the failures its event carries: a larger setting would be
    cut to that silently, so it is refused at start."""
    monkeypatch.setenv("DARKROOM_NOTIFY_FAILED_FILES_LISTED", str(FAILED_LISTED))
    assert NotifySettings().failed_files_listed == FAILED_LISTED
    monkeypatch.setenv("DARKROOM_NOTIFY_FAILED_FILES_LISTED", str(FAILED_LISTED + 1))
    with pytest.raises(ValidationError, match="DARKROOM_NOTIFY_FAILED_FILES_LISTED"):
        NotifySettings()


@pytest.mark.parametrize("settings", SERVICE_SETTINGS, ids=lambda s: s.service)
def test_no_service_setting_takes_the_name_of_a_shared_one(settings: type[IngestSettings]) -> None:
    """A service's own field named as a shared one replaces it: notify's 24-hour give-up once
    became every notify consumer's retry window for a database outage."""
    own = {
        name
        for cls in settings.__mro__[: settings.__mro__.index(CommonSettings)]
        for name in vars(cls).get("__annotations__", {})
    }
    assert own & set(CommonSettings.model_fields) == set()
