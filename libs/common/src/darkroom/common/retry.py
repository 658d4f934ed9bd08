"""Which faults are transient, and how long to wait before trying again."""

from __future__ import annotations

import random

import asyncpg
import urllib3.exceptions
from aiokafka.errors import KafkaError
from minio.error import ServerError


class TransientError(Exception):
    """Raised by a handler for a fault that a later attempt may not meet."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,  # the server shutting down, a query cancelled
    asyncpg.exceptions.TooManyConnectionsError,  # replicas scaled out past max_connections
    KafkaError,
    ServerError,
    urllib3.exceptions.HTTPError,
)


def backoff(attempt: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """Capped exponential backoff with full jitter, for the ``attempt``-th retry (1-based)."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32))  # 2**1100 would overflow a float
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
