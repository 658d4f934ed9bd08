"""A stopping service lets its periodic jobs end the round they are in, within its grace."""

from __future__ import annotations

import asyncio

from darkroom.common.runtime import drain, repeat


async def test_a_job_ends_its_round_and_starts_no_other() -> None:
    stopping = asyncio.Event()
    rounds: list[str] = []

    async def job() -> None:
        rounds.append("began")
        await asyncio.sleep(0.2)
        rounds.append("ended")

    task = asyncio.create_task(repeat(0.01, job, stopping))
    await asyncio.sleep(0.05)  # inside its first round
    stopping.set()
    await drain([task], grace=5)
    assert rounds == ["began", "ended"]


async def test_a_round_past_the_grace_is_cancelled() -> None:
    stopping = asyncio.Event()
    ended = asyncio.Event()

    async def stuck() -> None:
        await asyncio.sleep(3600)
        ended.set()

    task = asyncio.create_task(repeat(1, stuck, stopping))
    await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(drain([task], grace=0.1), timeout=5)
    assert task.cancelled() and not ended.is_set()
