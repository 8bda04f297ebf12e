"""The network clock: business time is event time, never the worker's wall clock.

Every input event says when it happened (`occurred_at`). A worker's network clock is the
latest `occurred_at` it has seen (a watermark): it never goes backwards, so an event that
arrives late (a till that was offline) is applied in its own right but does not turn the
clock back. Acceptance deadlines, load ages, decision and history stamps are read from it, so
a replay, a backfill or the simulator at 60x behave as the real day would; wall-clock time
only decides *when* the timers look at the clock (a tick compares deadlines with it).

The clock is also fed by the network times other workers published on the compacted topics
every worker follows (store-load's `updated_at`): right after a restart, before any input
arrives, it resumes from the latest time the network had published rather than from nothing,
and the re-read of inputs the crash left uncommitted cannot take it back. A deadline already
fired before the crash may fire again when the clock passes it: the time-out is idempotent
(the order machine ignores a time-out for a shipment no longer waiting).

Until a worker has seen any time at all (a fresh network) the clock is None: timers fire
nothing, and a handler that needs a time for an input without one uses the wall clock
(`NetworkClock.at`), the only place the wall clock may stand in for business time.
"""

from __future__ import annotations

from datetime import UTC, datetime


class NetworkClock:
    """The max `occurred_at` seen on this worker's inputs (and on the views it follows)."""

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now: datetime | None = None

    def observe(self, occurred_at: datetime) -> None:
        """Advance to `occurred_at` if it is later than the clock (never backwards)."""
        if occurred_at.tzinfo is None:
            raise ValueError("the network clock takes timezone-aware datetimes only")
        t = occurred_at.astimezone(UTC)
        if self._now is None or t > self._now:
            self._now = t

    def now(self) -> datetime | None:
        """The network time (UTC), None before any input was seen."""
        return self._now

    def timestamp(self) -> float | None:
        """`now()` as POSIX seconds (what deadlines are stored as), None before any input."""
        return None if self._now is None else self._now.timestamp()

    def at(self, occurred_at: datetime | None = None) -> datetime:
        """The business time of an input being processed: the clock including the input's own
        `occurred_at` (not yet observed: it is observed once the input is applied), or the
        wall clock when neither is known yet (a fresh network)."""
        t = self._now
        if occurred_at is not None:
            own = occurred_at.astimezone(UTC)
            t = own if t is None or own > t else t
        return t if t is not None else datetime.now(UTC)
