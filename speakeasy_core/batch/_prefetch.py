"""Run tasks ahead in worker threads, at most ``ahead`` at a time, results in order;
and deferred steps that an idle worker or the thread needing them runs, once.

Threads suffice: decoding (libsndfile, PyAV), resampling (soxr) and most numpy work
release the GIL, and so does the model's forward pass in torch or CTranslate2.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["THREAD_PREFIX", "Cancelled", "Deferred", "Prefetcher", "wait"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_PREFIX = "speakeasy-prefetch"
# Waiting in short slices keeps the main thread responsive to Ctrl-C on Windows,
# where a blocked lock acquire does not see KeyboardInterrupt.
_POLL_SECONDS = 0.1


class Cancelled(Exception):
    """Raised inside a task that found the prefetcher stopping."""


class Deferred(Generic[T]):
    """A step run at most once: by a worker that reaches it first, else by :meth:`result`.

    Work that may run on either side: a worker idle after its tasks takes it, and a
    caller that needs it before then runs it itself instead of waiting.
    """

    def __init__(self, step: Callable[[], T]) -> None:
        self._step: Callable[[], T] | None = step
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        """Run the step here unless it was started elsewhere."""
        with self._lock:
            step, self._step = self._step, None
        if step is None:
            return
        try:
            self._value = step()
        except BaseException as exc:  # re-raised in result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> T:
        """The step's result: run here if not started, else waited for (interruptibly)."""
        self.run()
        while not self._done.wait(_POLL_SECONDS):
            pass
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


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

    def defer(self, step: Callable[[], T]) -> Deferred[T]:
        """``step`` as a :class:`Deferred`, queued for a worker behind the tasks already
        submitted (without workers it runs when its result is asked for)."""
        deferred = Deferred(step)
        if self._pool is not None and not self._stop.is_set():
            # Shut down meanwhile: result() runs it, if anyone asks.
            with contextlib.suppress(RuntimeError):
                self._pool.submit(deferred.run)
        return deferred

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
