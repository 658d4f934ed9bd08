"""The notify service's SQL: the notifications owed, their claims, attempts and outcomes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from darkroom.common.db import Database, Transaction


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
    """The outcome of one attempt: sent, failed for good, or to be retried after ``retry_in``."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO attempts (delivery_id, outcome, detail) VALUES ($1, $2, $3)",
            delivery.delivery_id,
            outcome,
            detail,
        )
        if outcome == "sent":
            await tx.execute(
                "UPDATE deliveries SET state = 'sent', sent_at = now(), last_error = NULL"
                " WHERE delivery_id = $1",
                delivery.delivery_id,
            )
        elif outcome == "retry":
            await tx.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = now() + $2::interval,"
                " last_error = $3 WHERE delivery_id = $1",
                delivery.delivery_id,
                retry_in,
                detail,
            )
        else:
            await tx.execute(
                "UPDATE deliveries SET state = 'failed', last_error = $2 WHERE delivery_id = $1",
                delivery.delivery_id,
                detail,
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
    )
