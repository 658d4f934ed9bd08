"""CPU work on one file in a pool of processes, with a time limit.

CPU work never blocks the event loop, several files are worked on in parallel (``workers``),
and a file whose work passes the time limit fails alone: the pool that held it is replaced, so
a stuck decoder cannot stall the consumer, and a file cut short beside it is worked on again
in the new pool, beside the others. When a worker process crashes (a decoder fault) which file
did it cannot be told: each file in the pool then is worked on once more, alone in a new pool
(it waits for the files running to end), and the one that crashes it again fails. A file
handed over while every process is busy (a replica runs more consumers than processes) waits
for a free process; its time limit starts only then. A free process goes to the waiting file
with the most events queued behind it (``queued``, which the consumer sets): the consumer
with the longest backlog is served first, so a burst spread unevenly over partitions ends on
every process rather than on one; ties go in order of arrival, and a file that has waited
``PATIENCE_SECONDS`` goes first.

Workers are started by a fork server, not forked from the service: a forked worker would
inherit the service's listening socket and its threads' locks, and would outlive a service
killed with SIGKILL, keeping its port taken (measured: the restarted service could not bind).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import multiprocessing
import sys
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextvars import ContextVar
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

queued: ContextVar[int] = ContextVar("queued", default=0)
"""How many events wait behind the one being handled, in its consumer's partitions."""

PATIENCE_SECONDS = 10.0
"""How long a file waits for a process before it goes first, whatever the backlogs."""
FIRST = sys.maxsize
"""The turn of a file worked on once more alone, after a crash: it empties the pool."""


class WorkFailed(Exception):
    """The work on one file passed its time limit or crashed its process."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[WorkFailed], tuple[str, str]]:  # raised in worker processes
        return type(self), (self.code, self.message)


class _CutShort(Exception):
    """The file's pool was replaced for another file's time limit: it is run again at once."""


class _Gate:
    """``slots`` holders at a time. A free slot goes to the waiter with the most queued behind
    it, waiters with as many in order of arrival; but a waiter that has waited ``patience``
    seconds goes first, in order of arrival, so none waits long on others' backlogs (the
    reprocessing lane, which tells of none, among them: and a consumer that waits past Kafka's
    poll interval leaves its group)."""

    def __init__(self, slots: int, patience: float) -> None:
        self._free = slots
        self._patience = patience
        self._by_backlog: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap
        self._by_arrival: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._arrival = itertools.count()

    async def acquire(self, behind: int) -> None:
        if self._free > 0 and not self._by_backlog:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        heapq.heappush(self._by_backlog, (-behind, next(self._arrival), turn))
        self._by_arrival.append((loop.time(), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # let in, but cancelled before it could go: pass it on
            raise

    def release(self) -> None:
        """Let the next waiter in, or free the slot. (A waiter let in, or given up, stays in
        the other order until it comes up there, and is passed over.)"""
        while self._by_arrival and self._by_arrival[0][1].done():
            self._by_arrival.popleft()
        if self._by_arrival:
            since, turn = self._by_arrival[0]
            if asyncio.get_running_loop().time() - since >= self._patience:
                self._by_arrival.popleft()
                turn.set_result(None)
                return
        while self._by_backlog:
            _, _, turn = heapq.heappop(self._by_backlog)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


class WorkerPool:
    """``workers`` processes, started on first use; ``what`` names the work in failure codes."""

    def __init__(self, workers: int, timeout_seconds: float, what: str) -> None:
        self._workers = workers
        self._timeout = timeout_seconds
        self._what = what
        self._pool: ProcessPoolExecutor | None = None
        self._free = _Gate(workers, patience=PATIENCE_SECONDS)
        self._alone = asyncio.Lock()
        self._timed_out: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("forkserver")
            )
        return self._pool

    def close(self) -> None:
        """Stop the processes. It runs once the consumers stopped: work still running is work
        whose handler the stop cut short (its message goes again to the partition's next
        owner), so it is ended rather than waited for past the stop's grace."""
        if self._pool is not None:
            _end(self._pool)
            self._pool = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` in a worker process once one is free; raises ``WorkFailed`` when it
        passes the time limit or crashes."""
        await self._free.acquire(queued.get())
        try:
            for last in (False, True):
                try:
                    return await self._once(work, args)
                except _CutShort:
                    if last:
                        break
                except BrokenProcessPool:
                    break  # a crash: which file did it cannot be told
        finally:
            self._free.release()
        held = 0
        async with self._alone:  # once more, with no other file beside it
            try:
                for _ in range(self._workers):
                    await self._free.acquire(FIRST)  # the processes are idle meanwhile
                    held += 1
                return await self._once(work, args)
            except (BrokenProcessPool, _CutShort):
                raise WorkFailed(
                    f"{self._what}_crashed", "Reading the file crashed its worker process."
                ) from None
            finally:
                for _ in range(held):
                    self._free.release()

    async def _once(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        pool = self._executor()
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(pool, work, *args),
                timeout=self._timeout,
            )
        except TimeoutError:
            self._timed_out.add(pool)
            self._replace(pool)
            raise WorkFailed(
                f"{self._what}_timeout",
                f"Reading the file took longer than {self._timeout:g} s.",
            ) from None
        except BrokenProcessPool:
            self._replace(pool)
            if pool in self._timed_out:
                raise _CutShort from None  # by another file's time limit
            raise

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        """Drop a pool whose worker is stuck or dead; the next file gets a new one."""
        if self._pool is not pool:
            return  # replaced already, for another file
        self._pool = None
        _end(pool)
        log.warning("%s pool replaced", self._what)


def _end(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's processes, whatever they are doing, and let it go."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
