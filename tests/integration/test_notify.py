"""The notify service on the real stack, with a real SMTP server and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from standardwebhooks import Webhook

from darkroom.common.events import (
    FileOutcome,
    SessionProcessed,
    SessionSubmitted,
    WebhookTarget,
)
from darkroom.common.runtime import Runtime
from darkroom.common.sealing import Sealer
from darkroom.common.settings import CommonSettings, NotifySettings
from darkroom.notify import store
from darkroom.notify.app import create_runtime
from darkroom.notify.handlers import dispatch

from .backbone import at_least, eventually
from .consumers import Consumer, consumer
from .gateway import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REFUSED = "nobody@refused.example.org"


class Killed(Exception):
    """The service dying at the worst moment."""


class Inbox:
    """An aiosmtpd handler: keeps every message; refuses one address for good (550)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for rcpt, message in self.messages if address in rcpt]


class MisconfiguredRelay(Inbox):
    """A relay that refuses our sender for good (550 at ``MAIL``) until it is put right."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = True

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refusing:
            return "550 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


@dataclass
class Receiver:
    """An HTTP webhook receiver that fails ``failures`` times, then verifies and keeps."""

    url: str
    failures: int = 0
    delay: float = 0.0
    calls: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/hook")
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        state.calls += 1
        state.arrived.set()
        await asyncio.sleep(state.delay)
        if state.calls <= state.failures:
            return Response(status_code=500)
        body = await request.body()
        state.received.append(Webhook(SECRET).verify(body, dict(request.headers)))
        state.ids.append(request.headers["webhook-id"])
        return Response(status_code=204)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield state
    server.should_exit = True
    await task


@pytest.fixture
async def notify(
    settings: CommonSettings,
    new_database: Callable[[], Awaitable[str]],
    unique: str,
    smtp: tuple[Inbox, int],
) -> AsyncIterator[Consumer]:
    async with consumer(
        settings,
        new_database,
        unique,
        NotifySettings,
        create_runtime,
        None,
        (SessionSubmitted, SessionProcessed),
        smtp_port=smtp[1],
        mail_from="darkroom@example.org",
        dispatch_interval_seconds=0.2,
        retry_base_seconds=0.2,
        # longer than any send here takes, even on a cold machine: a send still in flight is
        # never taken for one whose sender died (the crash test sets its own)
        unconfirmed_after_seconds=30,
        webhook_private_targets=True,  # the receivers here listen on 127.0.0.1
    ) as service:
        await service.start()
        yield service


def submitted(**changes: Any) -> SessionSubmitted:
    values: dict[str, Any] = {
        "session_id": uuid.uuid4(),
        "project_id": uuid.uuid4(),
        "view_name": "North facade",
        "source": "drone",
        "uploader_email": "ana@example.org",
        "recipients": ["ops@example.org", "ana@example.org"],  # the uploader once only
        "uploaded": 97,
        "skipped": 2,
        "failed": [],
    }
    return SessionSubmitted(**(values | changes))


def notify_settings(service: Consumer) -> NotifySettings:
    runtime: Runtime = service.replicas[0]
    assert isinstance(runtime.settings, NotifySettings)
    return runtime.settings


async def test_an_upload_email_reaches_each_recipient_once_with_its_headers(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    event = submitted()
    await notify.send(event)
    await eventually(lambda: _count(inbox, 2))
    for address in ("ana@example.org", "ops@example.org"):
        [message] = inbox.to(address)
        assert message["Subject"] == "Upload received: North facade"
        assert message["From"] == "Darkroom <darkroom@example.org>"
        assert message["To"] == address
        assert message["Message-ID"].endswith("@example.org>")
        plain = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert plain is not None and html is not None
        assert "Uploaded: 97" in plain.get_content()
        assert "<td>Uploaded</td><td>97</td>" in html.get_content()
    assert (
        inbox.to("ana@example.org")[0]["Message-ID"] != inbox.to("ops@example.org")[0]["Message-ID"]
    )


async def test_an_address_spelt_with_other_capitals_gets_one_email(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    """The uploader named again as a project recipient, in other capitals, is one mailbox:
    one e-mail, to the address as first spelt."""
    inbox, _ = smtp
    await notify.send(
        submitted(
            uploader_email="Ana@example.org", recipients=["ana@example.org", "ops@example.org"]
        )
    )
    await eventually(lambda: _count(inbox, 2))
    # all of an event's deliveries are owed at once: none is still to come
    owed = await notify.replicas[0].db.pool.fetch("SELECT recipient FROM deliveries")
    assert sorted(row["recipient"] for row in owed) == ["Ana@example.org", "ops@example.org"]
    assert sorted(rcpt for rcpt, _ in inbox.messages) == [["Ana@example.org"], ["ops@example.org"]]


async def test_names_with_line_breaks_or_markup_cannot_inject(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    event = submitted(
        view_name="Roof\r\nBcc: victim@example.org\r\n\r\n<b>x</b>",
        recipients=[],
        failed=[
            FileOutcome(relative_path="a/<script>alert(1)</script>.jpg", reason="Not a JPEG."),
            FileOutcome(relative_path="b/evil\r\nX-Injected: yes.jpg", reason="Too large."),
        ],
    )
    await notify.send(event)
    [message] = await eventually(lambda: _only(inbox, "ana@example.org"))
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message["Subject"] == "Upload had failures: Roof Bcc: victim@example.org <b>x</b>"
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    plain = message.get_body(("plain",)).get_content()
    assert "Not a JPEG." in plain and "Too large." in plain


async def test_a_long_failure_list_is_cut_with_a_count(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    failed = [FileOutcome(relative_path=f"f/{n}.jpg", reason="Broken.") for n in range(75)]
    await notify.send(submitted(recipients=[], failed=failed))
    [message] = await eventually(lambda: _only(inbox, "ana@example.org"))
    plain = message.get_body(("plain",)).get_content()
    assert "f/49.jpg" in plain and "f/50.jpg" not in plain
    assert "... and 25 more." in plain and "Failed: 75" in plain


async def test_a_redelivered_event_sends_nothing_twice(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    event = submitted(recipients=[])
    await notify.send(event)
    await notify.send(event)  # a second delivery of the same fact (a new CloudEvents id)
    await eventually(lambda: _count(inbox, 1))
    await asyncio.sleep(2)  # time enough for a second message to arrive, were one sent
    assert len(inbox.to("ana@example.org")) == 1


async def test_a_refused_address_is_recorded_and_the_others_still_get_theirs(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    await notify.send(submitted(recipients=[REFUSED, "ops@example.org"]))
    await eventually(lambda: _count(inbox, 2))
    db = notify.replicas[0].db

    async def refused() -> Any:
        return await db.pool.fetchrow(
            "SELECT state, attempts, last_error FROM deliveries"
            " WHERE recipient = $1 AND state = 'failed'",
            REFUSED,
        )

    row = await eventually(refused)
    assert row["attempts"] == 1 and "No such user" in row["last_error"]  # 5xx: not retried


async def test_an_address_that_would_break_its_header_fails_at_once_and_says_why(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    """An address whose encoded-word decodes to a control character (the gateway's address
    check lets ``=`` and ``?`` by): never sent, recorded failed at its first attempt rather
    than retried for a day; the others still get the e-mail."""
    inbox, _ = smtp
    unsafe = "=?utf-8?q?=0B?=@example.org"
    await notify.send(submitted(recipients=[unsafe, "ops@example.org"]))
    await eventually(lambda: _count(inbox, 2))  # the uploader's and ops'
    db = notify.replicas[0].db

    async def failed() -> Any:
        return await db.pool.fetchrow(
            "SELECT attempts, last_error FROM deliveries WHERE recipient = $1 AND state = 'failed'",
            unsafe,
        )

    row = await eventually(failed)
    assert row["attempts"] == 1 and "To header holds a control character" in row["last_error"]
    assert sorted(to for to, _ in inbox.messages) == [["ana@example.org"], ["ops@example.org"]]


async def test_a_relay_refusing_the_sender_holds_the_mail_until_it_is_put_right(
    notify: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5xx to the sender (or the login) says the relay is misconfigured, not that the
    address is wrong: the mail is retried, and arrives once the relay is fixed."""
    relay, port = MisconfiguredRelay(), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setattr(notify_settings(notify), "smtp_port", port)
        await notify.send(submitted(recipients=[]))
        db = notify.replicas[0].db

        async def refused() -> list[Any]:
            return await db.pool.fetch("SELECT outcome, detail FROM attempts ORDER BY at")

        attempts = await eventually(lambda: at_least(refused, 2))
        relay.refusing = False  # the operator puts the relay right
        [message] = await eventually(lambda: _only(relay, "ana@example.org"))
    finally:
        controller.stop()
    assert message["Subject"] == "Upload received: North facade"
    assert [a["outcome"] for a in attempts[:2]] == ["retry", "retry"]
    assert all("SMTP 550" in a["detail"] and "Sender" in a["detail"] for a in attempts[:2])


async def test_a_non_ascii_address_goes_by_smtputf8_or_fails_at_once_and_says_why(
    notify: Consumer, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, _ = smtp  # aiosmtpd offers SMTPUTF8
    await notify.send(submitted(recipients=["j\u00fcrgen@example.org"]))
    [message] = await eventually(lambda: _only(inbox, "j\u00fcrgen@example.org"))
    assert message["To"] == "j\u00fcrgen@example.org"

    plain, port = Inbox(), free_port()
    relay = Controller(plain, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    relay.start()
    try:
        monkeypatch.setattr(notify_settings(notify), "smtp_port", port)
        await notify.send(submitted(recipients=["j\u00f6rg@example.org", "ops@example.org"]))
        await eventually(lambda: _count(plain, 2))  # ops and the uploader
        db = notify.replicas[0].db

        async def failed() -> Any:
            return await db.pool.fetchrow(
                "SELECT attempts, last_error FROM deliveries"
                " WHERE recipient = 'j\u00f6rg@example.org' AND state = 'failed'"
            )

        row = await eventually(failed)
    finally:
        relay.stop()
    assert row["attempts"] == 1  # never deliverable through this relay: not retried for days
    assert "SMTPUTF8" in row["last_error"] and "ASCII" in row["last_error"]
    assert not plain.to("j\u00f6rg@example.org")


async def test_the_processing_email_tells_what_was_found(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    event = SessionProcessed(
        session_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        view_name="North facade",
        source="drone",
        uploader_email="ana@example.org",
        processed=97,
        duplicates=4,
        tags=["Camera B", "2024"],
        persons=["Ada"],
        countries=["FR", "DE"],
        failed=[FileOutcome(relative_path="x.jpg", reason="The image data is truncated.")],
    )
    await notify.send(event)
    [message] = await eventually(lambda: _only(inbox, "ana@example.org"))
    assert message["Subject"] == "Processing complete: North facade"
    plain = message.get_body(("plain",)).get_content()
    for line in (
        "Media processed: 97",
        "Duplicates found: 4",
        "Tags: Camera B, 2024",
        "Persons: Ada",
        "Countries: FR, DE",
        "- x.jpg: The image data is truncated.",
    ):
        assert line in plain


async def test_a_crash_between_sending_and_recording_repeats_one_message_with_its_id(
    notify: Consumer, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, _ = smtp
    runtime = notify.replicas[0]
    settings = notify_settings(notify).model_copy(
        update={"dispatch_interval_seconds": 3600, "unconfirmed_after_seconds": 1}
    )
    await runtime.stop()  # this test drives the dispatcher itself
    paused = create_runtime(settings)
    notify.replicas[0] = paused
    real_record = store.record
    crashed = asyncio.Event()

    async def record_or_die(*args: Any, **kwargs: Any) -> None:
        if not crashed.is_set():
            crashed.set()
            raise Killed("after sending, before recording")
        await real_record(*args, **kwargs)

    await paused.start()
    await notify.send(submitted(recipients=[]))
    db = paused.db
    await eventually(lambda: _owed(db))
    monkeypatch.setattr(store, "record", record_or_die)
    sealer = Sealer(settings.sealing_keys)
    with pytest.raises(Killed):
        await dispatch(db, settings, sealer)
    [first] = inbox.to("ana@example.org")  # it went out; its outcome was never written
    assert await dispatch(db, settings, sealer) == 0  # claimed by the dead sender: not yet again
    await asyncio.sleep(settings.unconfirmed_after_seconds + 0.2)
    assert await dispatch(db, settings, sealer) == 1  # unconfirmed: sent again, once
    assert await dispatch(db, settings, sealer) == 0
    again = inbox.to("ana@example.org")
    assert len(again) == 2 and again[1]["Message-ID"] == first["Message-ID"]
    state = await db.pool.fetchval("SELECT state FROM deliveries")
    assert state == "sent"


async def test_a_webhook_is_signed_and_arrives_once_its_receiver_recovers(
    notify: Consumer, receiver: Receiver
) -> None:
    receiver.failures = 3
    sealed = Sealer(notify_settings(notify).sealing_keys).seal(SECRET)  # as the gateway sends it
    event = submitted(recipients=[], webhooks=[WebhookTarget(url=receiver.url, secret=sealed)])
    await notify.send(event)

    async def delivered() -> list[dict[str, Any]] | None:
        return receiver.received or None

    [body] = await eventually(delivered, timeout=60)
    assert body["type"] == "upload_succeeded"
    assert body["data"]["session_id"] == str(event.session_id)
    assert "webhooks" not in body["data"]  # secrets never travel on
    assert receiver.calls == 4
    attempts = await notify.replicas[0].db.pool.fetch(
        "SELECT a.outcome, a.detail FROM attempts a JOIN deliveries d USING (delivery_id)"
        " WHERE d.kind = 'webhook' ORDER BY a.at"
    )
    assert [(a["outcome"], a["detail"]) for a in attempts] == [("retry", "HTTP 500")] * 3 + [
        ("sent", "HTTP 204")
    ]
    kept = await notify.replicas[0].db.pool.fetchval(
        "SELECT secret FROM deliveries WHERE kind = 'webhook'"
    )
    assert kept == sealed and SECRET not in kept  # opened only to sign
    await asyncio.sleep(1)
    assert receiver.calls == 4 and len(set(receiver.ids)) == 1


async def test_a_service_stopping_mid_send_records_it_and_gives_back_the_rest(
    notify: Consumer, receiver: Receiver, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    receiver.delay = 2.0  # the webhooks are still being answered when the stop comes
    runtime = notify.replicas[0]
    sealed = Sealer(notify_settings(notify).sealing_keys).seal(SECRET)
    hooks = [WebhookTarget(url=f"{receiver.url}?n={n}", secret=sealed) for n in range(10)]
    await notify.send(submitted(recipients=[], webhooks=hooks))  # 11 owed; 8 claimed and sent
    await asyncio.wait_for(receiver.arrived.wait(), timeout=30)
    await runtime.stop()  # as on SIGTERM
    notify.replicas.remove(runtime)
    db = await asyncpg.connect(runtime.settings.database_url)
    try:
        rows = await db.fetch("SELECT kind, state, attempts FROM deliveries")
    finally:
        await db.close()
    states = [(row["state"], row["attempts"]) for row in rows]
    assert len(states) == 11 and ("sending", 1) not in states  # nothing left claimed
    sent = {
        kind: sum(r["kind"] == kind and r["state"] == "sent" for r in rows)
        for kind in ("email", "webhook")
    }
    assert len(receiver.received) == receiver.calls == sent["webhook"]  # each one recorded
    assert len(inbox.to("ana@example.org")) == sent["email"]
    assert sum(sent.values()) >= 8  # the eight begun at once ended
    # What had not begun stays due (or is given back, its attempt uncounted): at once, elsewhere.
    assert states.count(("pending", 0)) == 11 - sum(sent.values()) >= 1


async def test_a_webhook_whose_secret_no_key_opens_is_not_sent_and_says_why(
    notify: Consumer, receiver: Receiver
) -> None:
    foreign = Sealer(SecretStr(Fernet.generate_key().decode())).seal(SECRET)
    await notify.send(
        submitted(recipients=[], webhooks=[WebhookTarget(url=receiver.url, secret=foreign)])
    )

    for attempt in await eventually(
        lambda: _webhook_attempts(notify), timeout=30
    ):  # retried, in case the key comes back
        assert attempt["outcome"] == "retry"
        assert "cannot sign" in attempt["detail"] and "DARKROOM_SEALING_KEYS" in attempt["detail"]
    assert receiver.calls == 0  # nothing unsigned, or signed wrongly, ever leaves


async def test_a_webhook_to_a_private_address_is_refused_and_says_why(
    notify: Consumer, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify_settings(notify), "webhook_private_targets", False)
    sealed = Sealer(notify_settings(notify).sealing_keys).seal(SECRET)
    await notify.send(
        submitted(recipients=[], webhooks=[WebhookTarget(url=receiver.url, secret=sealed)])
    )

    [attempt] = await eventually(
        lambda: _webhook_attempts(notify), timeout=30
    )  # failed at once: not retried
    assert attempt["outcome"] == "failed"
    assert "127.0.0.1" in attempt["detail"] and "not a public address" in attempt["detail"]
    assert receiver.calls == 0


async def _webhook_attempts(notify: Consumer) -> list[Any] | None:
    return (
        await notify.replicas[0].db.pool.fetch(
            "SELECT a.outcome, a.detail FROM attempts a JOIN deliveries d USING (delivery_id)"
            " WHERE d.kind = 'webhook'"
        )
    ) or None


async def _count(inbox: Inbox, n: int) -> bool | None:
    return True if len(inbox.messages) >= n else None


async def _only(inbox: Inbox, address: str) -> list[EmailMessage] | None:
    return inbox.to(address) or None


async def _owed(db: Any) -> bool | None:
    return True if await db.pool.fetchval("SELECT count(*) FROM deliveries") else None


async def test_a_digest_gathers_the_sessions_of_its_window_into_one_email(
    notify: Consumer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    project = uuid.uuid4()
    first = submitted(project_id=project, recipients=[], digest_minutes=30)
    second = submitted(
        project_id=project,
        uploader_email="Ana@example.org",  # the same mailbox, spelt otherwise
        recipients=[],
        digest_minutes=30,
        view_name="South facade",
        failed=[FileOutcome(relative_path="s/1.jpg", reason="Not a JPEG.")],
    )
    for event in (first, second, first):  # the first one delivered twice
        await notify.send(event)
    db = notify.replicas[0].db

    async def gathered() -> int | None:
        count = await db.pool.fetchval(
            "SELECT sum(jsonb_array_length(payload -> 'sessions')) FROM deliveries"
            " WHERE template = 'digest' AND project_id = $1",
            project,
        )
        return count if count == 2 else None

    await eventually(gathered)

    async def anas() -> list[EmailMessage] | None:  # her mailbox, however the digest spelt it
        return [m for to, m in inbox.messages if "ana@example.org" in map(str.lower, to)] or None

    await asyncio.sleep(1.5)
    assert await anas() is None  # the window is still open
    await db.pool.execute(  # thirty minutes pass
        "UPDATE deliveries SET next_attempt_at = now() WHERE project_id = $1", project
    )
    [message] = await eventually(anas)
    assert message["Subject"] == "Darkroom: 2 updates on your uploads"
    plain = message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Upload received: North facade (drone)" in text
    assert "Upload had failures: South facade (drone)" in text and "s/1.jpg: Not a JPEG." in text
    await asyncio.sleep(1)
    assert len(await anas() or []) == 1


async def test_a_notification_that_cannot_be_made_is_retried_with_why_and_the_rest_go_out(
    notify: Consumer, smtp: tuple[Inbox, int], receiver: Receiver
) -> None:
    """A webhook secret no signer takes (stored by a gateway that did not check it) fails its
    own attempt, recorded with the reason; the e-mail of the same round is sent."""
    inbox, _ = smtp
    unsignable = Sealer(notify_settings(notify).sealing_keys).seal("whsec_!!!!!!!!!!!!!!!!")
    await notify.send(
        submitted(
            recipients=["ana@example.org"],
            webhooks=[WebhookTarget(url=receiver.url, secret=unsignable)],
        )
    )
    await eventually(lambda: _only(inbox, "ana@example.org"), timeout=30)
    [attempt, *_] = await eventually(lambda: _webhook_attempts(notify), timeout=30)
    assert attempt["outcome"] == "retry" and "cannot be sent" in attempt["detail"]
    state = await notify.replicas[0].db.pool.fetchval(
        "SELECT state FROM deliveries WHERE kind = 'webhook'"
    )
    assert state in ("pending", "sending")  # back in line (or on its next attempt)
    assert receiver.calls == 0


async def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_its_time(
    notify: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # each byte well within a read's timeout, the whole never
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(0.3)

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(notify_settings(notify), "webhook_timeout_seconds", 1.0)
    sealed = Sealer(notify_settings(notify).sealing_keys).seal(SECRET)
    url = f"http://127.0.0.1:{port}/hook"
    async with server:
        await notify.send(
            submitted(recipients=[], webhooks=[WebhookTarget(url=url, secret=sealed)])
        )
        [attempt, *_] = await eventually(lambda: _webhook_attempts(notify), timeout=30)
    assert (attempt["outcome"], attempt["detail"]) == ("retry", "no answer within 1 s")


async def test_a_sender_that_outlived_its_claim_does_not_overwrite_the_next_one(
    notify: Consumer,
) -> None:
    runtime = notify.replicas[0]
    settings = notify_settings(notify).model_copy(update={"dispatch_interval_seconds": 3600})
    await runtime.stop()  # this test claims and records itself
    paused = create_runtime(settings)
    notify.replicas[0] = paused
    await paused.start()
    await notify.send(submitted(recipients=[]))
    db = paused.db
    await eventually(lambda: _owed(db))
    [stale] = await store.claim(db, 10, timedelta(hours=1))
    [current] = await store.claim(db, 10, timedelta(0))  # taken for a dead sender's
    assert (stale.attempts, current.attempts) == (1, 2)
    await store.record(db, stale, "retry", "late answer", timedelta(seconds=1))
    assert await db.pool.fetchval("SELECT state FROM deliveries") == "sending"
    await store.record(db, current, "sent", None)
    await store.record(db, stale, "failed", "later still")
    row = await db.pool.fetchrow("SELECT state, last_error FROM deliveries")
    assert (row["state"], row["last_error"]) == ("sent", None)
    outcomes = await db.pool.fetch("SELECT outcome FROM attempts ORDER BY at")
    assert [a["outcome"] for a in outcomes] == ["retry", "sent", "failed"]  # all on record
