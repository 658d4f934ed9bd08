"""The worker pool: a file past its time limit, or crashing its process, fails alone, and a file
that waits for a free process is not charged for the wait."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from darkroom.common.pool import WorkerPool, WorkFailed, _Gate, queued


@pytest.fixture
def pool() -> WorkerPool:
    return WorkerPool(2, timeout_seconds=5, what="test")


async def test_work_runs_in_a_worker_process(pool: WorkerPool) -> None:
    try:
        assert await pool.run(os.getpid) != os.getpid()
    finally:
        pool.close()


async def test_a_file_past_its_time_limit_fails_alone(pool: WorkerPool) -> None:
    """The stuck file's pool is replaced while another file is half done there: that one is
    worked on again in the new pool and gets its result."""

    async def beside() -> None:
        await asyncio.sleep(2.5)  # starts while the stuck one runs, would end after its limit
        await pool.run(time.sleep, 3.5)

    try:
        await pool.run(os.getpid)  # the processes are up: the limits below are the work's
        stuck, other = await asyncio.gather(
            pool.run(time.sleep, 60), beside(), return_exceptions=True
        )
        assert isinstance(stuck, WorkFailed)
        assert stuck.code == "test_timeout"
        assert "longer than 5 s" in stuck.message
        assert other is None
        assert await pool.run(os.getpid) != os.getpid()  # and the new pool works on
    finally:
        pool.close()


async def test_a_file_that_crashes_its_process_fails_and_the_one_beside_it_does_not(
    pool: WorkerPool,
) -> None:
    async def beside() -> int:
        await asyncio.sleep(0.5)  # running when the other crashes the pool
        return await pool.run(_slow_sum, [1, 2, 3])

    try:
        await asyncio.gather(*(pool.run(time.sleep, 0.2) for _ in range(2)))  # both are up
        crashed, other = await asyncio.gather(_crash_later(pool), beside(), return_exceptions=True)
        assert isinstance(crashed, WorkFailed) and crashed.code == "test_crashed"
        assert other == 6  # cut short by the crash, worked on again alone
        assert await pool.run(sum, [1, 2, 3]) == 6
    finally:
        pool.close()


async def _crash_later(pool: WorkerPool) -> None:
    await asyncio.sleep(1)
    await pool.run(os._exit, 3)


def _slow_sum(numbers: list[int]) -> int:
    time.sleep(2)
    return sum(numbers)


async def test_the_time_limit_starts_when_a_process_is_free() -> None:
    """Three files of 1.2 s for one process under a 2 s limit: the last waits 2.4 s for the
    process, and is not failed for it."""
    pool = WorkerPool(1, timeout_seconds=2, what="test")
    try:
        await pool.run(os.getpid)  # the process is up: the limit below is the work's
        results = await asyncio.gather(*(pool.run(time.sleep, 1.2) for _ in range(3)))
        assert results == [None, None, None]
    finally:
        pool.close()


async def test_a_free_process_goes_to_the_file_with_the_most_events_behind_it() -> None:
    """The consumer with the longest backlog is served first (a burst's partitions then end
    together, on every process); files with as many behind them go in order of arrival."""
    pool = WorkerPool(1, timeout_seconds=30, what="test")
    try:
        await pool.run(os.getpid)  # the process is up
        holding = asyncio.create_task(pool.run(time.sleep, 0.6))
        await asyncio.sleep(0.1)
        waiting = []
        for behind in (1, 9, 4, 9):
            waiting.append(asyncio.create_task(_with_behind(pool, behind)))
            await asyncio.sleep(0.05)
        await holding
        started = await asyncio.gather(*waiting)
        order = sorted(range(len(started)), key=lambda n: started[n])
        assert order == [1, 3, 2, 0]
    finally:
        pool.close()


async def test_a_file_given_up_while_it_waits_leaves_its_turn_to_the_next() -> None:
    pool = WorkerPool(1, timeout_seconds=30, what="test")
    try:
        await pool.run(os.getpid)
        holding = asyncio.create_task(pool.run(time.sleep, 0.4))
        await asyncio.sleep(0.1)
        given_up = asyncio.create_task(_with_behind(pool, 5))
        after = asyncio.create_task(_with_behind(pool, 1))
        await asyncio.sleep(0.05)
        given_up.cancel()
        await holding
        assert await asyncio.wait_for(after, timeout=10) > 0
        await asyncio.gather(given_up, return_exceptions=True)
        assert await asyncio.wait_for(pool.run(os.getpid), timeout=10) > 0  # none held on
    finally:
        pool.close()


async def test_a_turn_given_to_a_file_given_up_at_that_moment_passes_to_the_next() -> None:
    gate = _Gate(1, patience=60)
    await gate.acquire(0)  # the one process is busy
    first = asyncio.create_task(gate.acquire(5))
    second = asyncio.create_task(gate.acquire(1))
    await asyncio.sleep(0)  # both wait
    gate.release()  # the process is free: the first's turn ...
    first.cancel()  # ... which is given up before it could go
    await asyncio.wait_for(second, timeout=5)
    await asyncio.gather(first, return_exceptions=True)


async def test_a_file_that_waited_its_patience_goes_before_longer_backlogs() -> None:
    """The reprocessing lane tells of nothing behind its files: during a burst it would wait
    until every backlog ran dry (and its consumer, past Kafka's poll interval, out of its
    group). Once it has waited its patience, it goes first."""
    gate = _Gate(1, patience=0.2)
    await gate.acquire(0)  # the one process is busy
    backfill = asyncio.create_task(gate.acquire(0))
    await asyncio.sleep(0.05)
    early = asyncio.create_task(gate.acquire(50))
    await asyncio.sleep(0)
    gate.release()  # the backfill has not waited long: the burst goes first
    await asyncio.sleep(0)
    assert early.done() and not backfill.done()
    await asyncio.sleep(0.3)  # past the backfill's patience
    late = asyncio.create_task(gate.acquire(50))
    await asyncio.sleep(0)
    gate.release()
    await asyncio.sleep(0)
    assert backfill.done() and not late.done()
    gate.release()
    await asyncio.wait_for(late, timeout=5)


async def _with_behind(pool: WorkerPool, behind: int) -> float:
    """When the work started, handed over as a consumer with ``behind`` events queued."""
    queued.set(behind)  # this task's own context
    return await pool.run(time.time)


async def test_closing_ends_work_still_running_rather_than_waiting_for_it() -> None:
    """A stop past its grace: the handler waiting on two minutes' work was cancelled, and
    closing the pool ends that work's process instead of waiting for it."""
    pool = WorkerPool(1, timeout_seconds=600, what="test")
    worker = await pool.run(os.getpid)
    long = asyncio.create_task(pool.run(time.sleep, 120))
    await asyncio.sleep(0.5)  # the work is under way in the worker
    long.cancel()
    await asyncio.wait_for(asyncio.to_thread(pool.close), timeout=30)  # 120 s if it waited
    await asyncio.gather(long, return_exceptions=True)
    for _ in range(100):  # the signal delivered
        if not _alive(worker):
            break
        await asyncio.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    """Whether the process runs (a terminated one its parent has not reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
