"""Session events in, notifications owed; a dispatcher sends what is due, exactly once.

The guarantee. A notification is recorded as owed in the same transaction as the event's
inbox entry (a redelivered event owes nothing new), claimed in a committed transaction before
it is sent, and its outcome recorded after. Webhook receivers and SMTP servers are not
transactional: if the service dies after sending and before recording, the claim outlives its
sender and the notification is sent once more after ``unconfirmed_after_seconds`` — with the
same ``Message-ID`` (e-mail) or ``webhook-id`` (webhooks), derived from the event and the
recipient, so a receiver that keeps the ids it has seen drops the repeat. Nothing is lost;
at most one repeat reaches a receiver that does not.

A refusal that cannot change (an SMTP 5xx for the address, or for the message at ``DATA``) is
recorded as failed at once; anything else (a 4xx, a 5xx to the login, the sender or the
greeting, a dropped connection, a timeout, a webhook's non-2xx answer) is retried with
exponential backoff until ``retry_for_seconds`` have passed, every attempt recorded.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import aiosmtplib
import httpx

from darkroom.common.db import Database, Transaction
from darkroom.common.events import SessionEvent, SessionProcessed, SessionSubmitted
from darkroom.common.sealing import Sealer, SealingError
from darkroom.common.settings import NotifySettings
from darkroom.notify import messages, store, targets
from darkroom.notify.store import Delivery

log = logging.getLogger(__name__)
# Claimed together and sent at once: each claim's sends begin as it is made, so none waits
# for others (``unconfirmed_after_seconds`` need only outlast one send).
AT_ONCE = 8


async def on_submitted(event: SessionSubmitted, tx: Transaction, settings: NotifySettings) -> None:
    template = "upload_failures" if event.failed else "upload_succeeded"
    await _owe(event, template, tx, settings)


async def on_processed(event: SessionProcessed, tx: Transaction, settings: NotifySettings) -> None:
    await _owe(event, "processing_complete", tx, settings)


async def _owe(
    event: SessionEvent, template: str, tx: Transaction, settings: NotifySettings
) -> None:
    subject_key = f"{event.topic}:{event.session_id}"
    payload = event.model_dump(mode="json", exclude={"webhooks"})
    domain = settings.mail_from.rpartition("@")[2] or "darkroom"
    give_up = timedelta(seconds=settings.retry_for_seconds)
    addresses: dict[str, str] = {}  # one message per mailbox, as first spelt
    for given in [event.uploader_email or "", *event.recipients]:
        if address := given.strip():
            addresses.setdefault(messages.mailbox(address), address)
    for address in addresses.values():
        if event.digest_minutes:
            await store.gather(
                tx,
                project_id=event.project_id,
                subject_key=subject_key,
                recipient=address,
                entry={"template": template, **payload},
                window=timedelta(minutes=event.digest_minutes),
                domain=domain,
                give_up_after=give_up,
            )
            continue
        await store.owe(
            tx,
            subject_key=subject_key,
            kind="email",
            recipient=address,
            template=template,
            payload=payload,
            message_id=messages.message_id(subject_key, address, domain),
            give_up_after=give_up,
        )
    for hook in event.webhooks:
        await store.owe(
            tx,
            subject_key=subject_key,
            kind="webhook",
            recipient=hook.url,
            template=template,
            payload=payload,
            message_id=messages.webhook_id(subject_key, hook.url),
            give_up_after=give_up,
            secret=hook.secret,
        )


async def dispatch(
    db: Database, settings: NotifySettings, sealer: Sealer, until: asyncio.Event | None = None
) -> int:
    """Send every notification due now, or until ``until`` is set (the service stopping: sends
    in flight end and are recorded, the claimed ones not yet begun are given back, and no
    other is claimed); returns how many were claimed."""
    attempted = 0
    # No proxy from the environment: requests go to the address targets.pinned checked.
    async with httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds, trust_env=False, follow_redirects=False
    ) as client:
        while not (until and until.is_set()) and (
            due := await store.claim(
                db, AT_ONCE, timedelta(seconds=settings.unconfirmed_after_seconds)
            )
        ):

            async def one(delivery: Delivery) -> Delivery | None:
                """The delivery if it is given back unsent, else None once it is recorded."""
                if until is not None and until.is_set():
                    return delivery
                outcome, detail = await _attempt(delivery, settings, sealer, client)
                if outcome == "retry" and datetime.now(UTC) >= delivery.give_up_at:
                    outcome, detail = (
                        "failed",
                        f"gave up after {delivery.attempts} attempts: {detail}",
                    )
                await store.record(db, delivery, outcome, detail, _backoff(delivery, settings))
                return None

            # every send ends before the client closes, whatever one of them raised
            ended = await asyncio.gather(*(one(d) for d in due), return_exceptions=True)
            if unsent := [d for d in ended if isinstance(d, Delivery)]:
                await store.release(db, unsent)
            for error in ended:
                if isinstance(error, BaseException):
                    raise error
            attempted += len(due)
    return attempted


async def _attempt(
    delivery: Delivery, settings: NotifySettings, sealer: Sealer, client: httpx.AsyncClient
) -> tuple[str, str | None]:
    """One attempt, within its time whatever the other side does; an error of ours is an
    outcome too (retried, its reason recorded), never a claim left behind."""
    seconds = (
        settings.smtp_timeout_seconds
        if delivery.kind == "email"
        else settings.webhook_timeout_seconds
    )
    try:
        async with asyncio.timeout(seconds):
            return await _send(delivery, settings, sealer, client)
    except TimeoutError:
        return "retry", f"no answer within {seconds:g} s"
    except Exception as error:
        log.exception("notification %s could not be sent", delivery.delivery_id)
        return "retry", f"cannot be sent: {type(error).__name__}: {error}"


def _backoff(delivery: Delivery, settings: NotifySettings) -> timedelta:
    seconds = settings.retry_base_seconds * 2 ** max(0, delivery.attempts - 1)
    return timedelta(seconds=min(seconds, settings.retry_max_interval_seconds))


async def _send(
    delivery: Delivery, settings: NotifySettings, sealer: Sealer, client: httpx.AsyncClient
) -> tuple[str, str | None]:
    now = datetime.now(UTC)
    if delivery.kind == "email":
        try:
            message = messages.email(
                delivery.template,
                delivery.payload,
                sender=settings.mail_from,
                recipient=delivery.recipient,
                message_id=delivery.message_id,
                failed_listed=settings.failed_files_listed,
                now=now,
            )
        except messages.UnsafeHeader as error:  # the same every time: not retried
            return "failed", f"refused: {error}"
        return await _smtp(message, settings)
    try:
        secret = sealer.open(delivery.secret or "")
    except SealingError as error:  # retried: the operator may put the key back in time
        return "retry", f"cannot sign: {error}"
    try:
        target = await targets.pinned(
            delivery.recipient, private_allowed=settings.webhook_private_targets
        )
    except targets.NotPublic as error:
        return "failed", f"refused: {error}"
    except OSError as error:
        return "retry", f"lookup failed: {error}"
    body, headers = messages.webhook(
        delivery.template,
        delivery.payload,
        secret=secret,
        webhook_id=delivery.message_id,
        occurred=delivery.created_at,
        now=now,
    )
    try:
        response = await client.post(
            target.url,
            content=body,
            headers=headers | target.headers,
            extensions=target.extensions,
        )
    except httpx.HTTPError as error:
        return "retry", f"{type(error).__name__}: {error}"
    if response.is_success:
        return "sent", f"HTTP {response.status_code}"
    return "retry", f"HTTP {response.status_code}"


async def _smtp(message: object, settings: NotifySettings) -> tuple[str, str | None]:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message,  # type: ignore[arg-type]
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            start_tls=settings.smtp_starttls,
            use_tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [refused.code for refused in error.recipients]
        permanent = all(500 <= code < 600 for code in codes)
        return ("failed" if permanent else "retry"), f"refused: {error.recipients[0].message}"
    except aiosmtplib.SMTPNotSupported as error:  # a non-ASCII local part, a relay without
        return "failed", f"{error}; the address cannot be written in ASCII"  # SMTPUTF8
    except aiosmtplib.SMTPResponseException as error:
        # Only a 5xx for this recipient or this message is final. One to the greeting, the
        # login or the sender is the relay's configuration (a rotated password, a refused
        # mail_from): retried, so the backlog waits for the operator instead of failing.
        final = isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError)
        permanent = final and 500 <= error.code < 600
        return ("failed" if permanent else "retry"), f"SMTP {error.code}: {error.message}"
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        return "retry", f"{type(error).__name__}: {error}"
    return "sent", None
