"""Retrying file operations that fail only because someone else holds the file.

Windows refuses to delete or replace a file another process has open (an antivirus
scan, the indexer, a data loader that has not closed its handle yet). Those errors
clear on their own, so they are retried with tenacity; every other error is permanent
and surfaces at once. The budget is the *accumulated sleep* rather than the wall
clock, so a run with an injected sleep is deterministic and never exceeds the bound.
"""

from __future__ import annotations

import errno
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    before_sleep_log,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from .errors import InvalidOptionError

__all__ = ["DEFAULT_POLICY", "Retried", "RetryPolicy", "retry_transient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``ERROR_ACCESS_DENIED``: also what Windows reports for a delete-pending file.
WINERROR_ACCESS_DENIED = 5
#: ``ERROR_SHARING_VIOLATION``: the file is open without share-delete.
WINERROR_SHARING_VIOLATION = 32
#: ``ERROR_LOCK_VIOLATION``: part of the file is locked.
WINERROR_LOCK_VIOLATION = 33


def _check_seconds(option: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        sign = "> 0" if positive else ">= 0"
        raise InvalidOptionError(option, value, f"must be a finite number of seconds {sign}")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to retry a file operation that another process blocks.

    Delays grow exponentially from ``initial_delay`` up to ``max_delay``, each plus a
    random ``jitter`` (``0`` makes the schedule deterministic). Retrying stops before
    the accumulated sleep would exceed ``max_wait``. Windows' ambiguous "access denied"
    (winerror 5, also reported for delete-pending files and real permission errors)
    gets the smaller ``access_denied_wait``, except when *replacing* a file: that is
    what Windows reports when another process has the target open, so it gets
    ``max_wait`` like a sharing violation. ``sleep`` is called for every pause: inject
    :class:`~speakeasy_core.testing.SimulatedClock`'s ``sleep`` in tests.
    """

    max_wait: float = 2.5
    access_denied_wait: float = 0.25
    initial_delay: float = 0.01
    max_delay: float = 0.5
    jitter: float = 0.01
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        _check_seconds("max_wait", self.max_wait)
        _check_seconds("access_denied_wait", self.access_denied_wait)
        _check_seconds("initial_delay", self.initial_delay, positive=True)
        _check_seconds("max_delay", self.max_delay)
        _check_seconds("jitter", self.jitter)
        if self.max_delay < self.initial_delay:
            raise InvalidOptionError(
                "max_delay", self.max_delay, f"must be >= initial_delay={self.initial_delay}"
            )

    def wait_limit(self, exc: BaseException, *, replacing: bool = False) -> float | None:
        """The sleep budget for retrying after ``exc``; ``None`` if it is permanent.

        ``replacing``: ``exc`` came from renaming a file over an existing one.
        """
        if not isinstance(exc, OSError):
            return None
        winerror = getattr(exc, "winerror", None)
        if winerror in (WINERROR_SHARING_VIOLATION, WINERROR_LOCK_VIOLATION):
            return self.max_wait
        if winerror == WINERROR_ACCESS_DENIED:
            return self.max_wait if replacing else min(self.access_denied_wait, self.max_wait)
        if exc.errno == errno.EBUSY:
            return self.max_wait
        return None

    def is_transient(self, exc: BaseException, *, replacing: bool = False) -> bool:
        """Whether ``exc`` is a lock held by someone else that may clear by itself."""
        return self.wait_limit(exc, replacing=replacing) is not None


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Retried(Generic[T]):
    """What :func:`retry_transient` did: the value, or the lock that outlasted the budget."""

    value: T | None  # what ``fn`` returned; None if the lock outlasted the budget
    attempts: int
    waited: float
    error: OSError | None = None


def _out_of_budget(policy: RetryPolicy, replacing: bool, state: RetryCallState) -> bool:
    error = state.outcome.exception() if state.outcome is not None else None
    limit = policy.wait_limit(error, replacing=replacing) if error is not None else None
    return limit is None or state.idle_for + state.upcoming_sleep > limit


def retry_transient(
    first_error: OSError, fn: Callable[[], T], policy: RetryPolicy, *, replacing: bool = False
) -> Retried[T]:
    """Retry ``fn`` after its first attempt failed with ``first_error``.

    Callers make the first attempt themselves, so the common case (nothing locked)
    builds no tenacity machinery. A permanent ``first_error`` is re-raised at once;
    later permanent errors (and any non-``OSError``, ``KeyboardInterrupt`` included)
    propagate unchanged. A transient error that outlasts the budget is returned in
    ``Retried.error`` rather than raised. ``replacing``: ``fn`` renames a file over
    another (see :meth:`RetryPolicy.wait_limit`).
    """
    if not policy.is_transient(first_error, replacing=replacing):
        raise first_error
    # tenacity's attempt 1 re-raises the caller's error, so that the backoff
    # schedule and the attempt count stay tenacity's.
    pending = [first_error]

    def attempt() -> T:
        if pending:
            raise pending.pop()
        return fn()

    retrying = Retrying(
        sleep=policy.sleep,
        wait=wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay)
        + wait_random(0, policy.jitter),
        stop=lambda state: _out_of_budget(policy, replacing, state),
        retry=retry_if_exception(lambda exc: policy.is_transient(exc, replacing=replacing)),
        before_sleep=before_sleep_log(logger, logging.DEBUG),
    )
    value: T | None = None
    error: OSError | None = None
    try:
        value = retrying(attempt)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        assert isinstance(last, OSError)  # only transient OSErrors are retried
        error = last
    stats = retrying.statistics
    return Retried(value, int(stats["attempt_number"]), float(stats["idle_for"]), error)
