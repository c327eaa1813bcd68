"""Run tasks ahead in worker threads, at most ``ahead`` at a time, results in order.

Threads suffice: decoding (libsndfile, PyAV), resampling (soxr) and most numpy work
release the GIL, and so does the model's forward pass in torch or CTranslate2.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import TypeVar

__all__ = ["THREAD_PREFIX", "Cancelled", "Prefetcher", "wait"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_PREFIX = "speakeasy-prefetch"
# Waiting in short slices keeps the main thread responsive to Ctrl-C on Windows,
# where a blocked lock acquire does not see KeyboardInterrupt.
_POLL_SECONDS = 0.1


class Cancelled(Exception):
    """Raised inside a task that found the prefetcher stopping."""


class Prefetcher:
    """A bounded, ordered pool: :meth:`results` yields task results in task order.

    With ``workers=0`` every task runs in the calling thread when its result is
    needed (no threads). Otherwise the next ``ahead`` tasks run in ``workers``
    threads while the caller works on the current result. :meth:`close` (also on
    leaving the ``with`` block) stops promptly: tasks not started are dropped, running
    ones see :meth:`check` raise :class:`Cancelled`, and the threads are joined.
    """

    def __init__(self, workers: int, ahead: int) -> None:
        if workers < 0 or ahead < 1:
            raise ValueError("workers must be >= 0 and ahead >= 1")
        self.workers = workers
        self.ahead = ahead
        self._stop = threading.Event()
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX)
            if workers
            else None
        )

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the prefetcher is stopping (call it inside tasks)."""
        if self._stop.is_set():
            raise Cancelled

    def submit(self, task: Callable[[], T]) -> Future[T]:
        """Start ``task`` now (in a worker, or right here with no workers)."""
        if self._pool is not None:
            return self._pool.submit(task)
        future: Future[T] = Future()
        try:
            future.set_result(task())
        except Exception as exc:
            future.set_exception(exc)
        return future

    def results(self, tasks: Iterator[Callable[[], T]]) -> Iterator[T]:
        """Each task's result, in order; at most ``ahead`` tasks started and not yet yielded.

        ``tasks`` is advanced in the calling thread. A task's exception is raised here
        when its turn comes; one from ``tasks`` itself after the tasks started before it.
        """
        pool = self._pool
        if pool is None:
            for task in tasks:
                yield task()
            return
        inflight: deque[Future[T]] = deque()
        failure: list[Exception] = []  # from ``tasks`` itself: raised once the rest is out

        def fill() -> None:
            while not failure and len(inflight) < self.ahead:
                try:
                    task = next(tasks, None)
                except Exception as exc:
                    failure.append(exc)
                    return
                if task is None:
                    return
                inflight.append(pool.submit(task))

        try:
            fill()
            while inflight:
                future = inflight.popleft()
                result = wait(future)
                del future  # it holds the result too
                # Refill before handing the result on: the workers prepare the next
                # tasks while the caller works on this one.
                fill()
                yield result
                del result
            if failure:
                raise failure[0]
        finally:
            for future in inflight:
                future.cancel()

    def close(self) -> None:
        """Stop: drop tasks not started, let running ones cancel, join the threads."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def wait(future: Future[T]) -> T:
    """``future.result()``, interruptible by Ctrl-C on every platform."""
    while True:
        try:
            return future.result(timeout=_POLL_SECONDS)
        except FutureTimeout:
            continue
