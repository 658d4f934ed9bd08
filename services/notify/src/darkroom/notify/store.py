"""The notify service's SQL: the notifications owed, their claims, attempts and outcomes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from darkroom.common.db import Database, Transaction
from darkroom.notify import messages

DIGEST_LOCK = 0x6E6F7469  # "noti": the first key of this service's advisory locks


@dataclass(frozen=True)
class Delivery:
    delivery_id: uuid.UUID
    kind: str
    recipient: str
    template: str
    payload: dict[str, Any]
    secret: str | None
    message_id: str
    attempts: int
    give_up_at: datetime
    created_at: datetime


async def owe(
    tx: Transaction,
    *,
    subject_key: str,
    kind: str,
    recipient: str,
    template: str,
    payload: dict[str, Any],
    message_id: str,
    give_up_after: timedelta,
    secret: str | None = None,
) -> None:
    """Record the intent to notify; a second intent for the same thing changes nothing."""
    await tx.execute(
        "INSERT INTO deliveries (delivery_id, subject_key, kind, recipient, template, payload,"
        " secret, message_id, give_up_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8,"
        " now() + $9::interval) ON CONFLICT (subject_key, kind, recipient) DO NOTHING",
        uuid.uuid4(),
        subject_key,
        kind,
        recipient,
        template,
        json.dumps(payload),
        secret,
        message_id,
        give_up_after,
    )


async def gather(
    tx: Transaction,
    *,
    project_id: uuid.UUID,
    subject_key: str,
    recipient: str,
    entry: dict[str, Any],
    window: timedelta,
    domain: str,
    give_up_after: timedelta,
) -> None:
    """Add one session's news to the recipient's open digest (opening one if none is open).

    A digest is open until its window closes and its first attempt starts; later news opens
    the next one.
    """
    # One digest per mailbox (``messages.mailbox``), however each event spelt it.
    await tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        DIGEST_LOCK,
        f"{project_id} {messages.mailbox(recipient)}",
    )
    delivery_id = await tx.fetchval(
        "SELECT delivery_id FROM deliveries WHERE project_id = $1 AND lower(recipient) = lower($2)"
        " AND template = 'digest' AND state = 'pending' AND attempts = 0"
        # held until this entry is in: a claim skips it, or it is claimed before and not found
        " FOR UPDATE",
        project_id,
        recipient,
    )
    if delivery_id is None:
        delivery_id, key = uuid.uuid4(), f"digest:{project_id}:{uuid.uuid4()}"
        await tx.execute(
            "INSERT INTO deliveries (delivery_id, subject_key, project_id, kind, recipient,"
            " template, payload, message_id, next_attempt_at, give_up_at) VALUES ($1, $2, $3,"
            " 'email', $4, 'digest', $5::jsonb, $6, now() + $7::interval,"
            " now() + $7::interval + $8::interval)",
            delivery_id,
            key,
            project_id,
            recipient,
            json.dumps({"sessions": []}),
            messages.message_id(key, recipient, domain),
            window,
            give_up_after,
        )
    added = await tx.fetchval(
        "INSERT INTO digest_entries (subject_key, recipient, delivery_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        subject_key,
        recipient,
        delivery_id,
    )
    if added:
        await tx.execute(
            "UPDATE deliveries SET payload = jsonb_set(payload, '{sessions}',"
            " payload -> 'sessions' || jsonb_build_array($2::jsonb)) WHERE delivery_id = $1",
            delivery_id,
            json.dumps(entry),
        )


async def claim(db: Database, limit: int, unconfirmed_after: timedelta) -> list[Delivery]:
    """Due notifications, marked as being sent (committed before anything is sent).

    Also those claimed ``unconfirmed_after`` ago with no outcome: their sender died between
    sending and recording, so they go again — a receiver sees at most one repeat.
    """
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "UPDATE deliveries SET state = 'sending', attempts = attempts + 1,"
            " claimed_at = now() WHERE delivery_id IN ("
            "  SELECT delivery_id FROM deliveries"
            "  WHERE (state = 'pending' AND next_attempt_at <= now())"
            "   OR (state = 'sending' AND claimed_at < now() - $2::interval)"
            "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED"
            " ) RETURNING *",
            limit,
            unconfirmed_after,
        )
    return [_delivery(row) for row in rows]


async def record(
    db: Database,
    delivery: Delivery,
    outcome: str,
    detail: str | None,
    retry_in: timedelta | None = None,
) -> None:
    """The outcome of one attempt: sent, failed for good, or to be retried after ``retry_in``.

    The attempt is always written; the delivery's state only while this attempt's claim holds
    (a sender that outlived ``unconfirmed_after`` finds it claimed again, and leaves it)."""
    claim = (delivery.delivery_id, delivery.attempts)
    held = "WHERE delivery_id = $1 AND attempts = $2 AND state = 'sending'"
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO attempts (delivery_id, outcome, detail) VALUES ($1, $2, $3)",
            delivery.delivery_id,
            outcome,
            detail,
        )
        if outcome == "sent":
            await tx.execute(
                f"UPDATE deliveries SET state = 'sent', sent_at = now(), last_error = NULL {held}",
                *claim,
            )
        elif outcome == "retry":
            await tx.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = now() + $3::interval,"
                f" last_error = $4 {held}",
                *claim,
                retry_in,
                detail,
            )
        else:
            await tx.execute(
                f"UPDATE deliveries SET state = 'failed', last_error = $3 {held}", *claim, detail
            )


async def release(db: Database, deliveries: list[Delivery]) -> None:
    """Claims given back unsent (the service stopping): due again at once, elsewhere, their
    attempt not counted."""
    await db.pool.executemany(
        "UPDATE deliveries SET state = 'pending', attempts = attempts - 1"
        " WHERE delivery_id = $1 AND attempts = $2 AND state = 'sending'",
        [(d.delivery_id, d.attempts) for d in deliveries],
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        delivery_id=row["delivery_id"],
        kind=row["kind"],
        recipient=row["recipient"],
        template=row["template"],
        payload=json.loads(row["payload"]),
        secret=row["secret"],
        message_id=row["message_id"],
        attempts=row["attempts"],
        give_up_at=row["give_up_at"],
        created_at=row["created_at"],
    )
