"""The worker pool: a file past its time limit fails alone, a crash fails, and a file that waits
for a free process is not charged for the wait."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from darkroom.common.pool import WorkerPool, WorkFailed


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


async def test_a_file_that_crashes_its_process_fails_and_the_pool_goes_on(
    pool: WorkerPool,
) -> None:
    try:
        with pytest.raises(WorkFailed) as failed:
            await pool.run(os._exit, 3)
        assert failed.value.code == "test_crashed"
        assert await pool.run(sum, [1, 2, 3]) == 6
    finally:
        pool.close()


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
