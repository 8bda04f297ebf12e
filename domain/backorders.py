"""Backorders: lines no location can serve now wait for stock, first come first served per SKU.

Under the policy's `backorder` setting (per channel if it fits), a line that cannot be placed
(not enough stock, or no single location for a `ship_complete` order) waits as `backordered`
instead of becoming `unroutable`. Each SKU has ONE queue owner (the backorders agent, keyed by
SKU, agents/backorders.py) holding the waiting orders oldest first (by the order's
`occurred_at`, network time; ties by order_id). When a location owner sees a SKU's
availability go up (a receipt, a stock count, a return to stock, a released reservation) it
tells that SKU's queue, which hands a *retry* to the head of the queue only: the order routes
its waiting units of that SKU (every waiting line for `ship_complete`) through the normal
policy, capacity and reservation path, and answers `leave` (routed) or `wait` (still not
placeable). Only then is the next order retried. One retry in flight per SKU is what keeps
"first come first served" true with any number of workers: a younger order never races an
older one for the same units (strict head of line: a large head blocks smaller orders behind
it until its units are there). Stock and capacity stay granted by their single owner, the
location owner, so a backorder is never oversold nor over capacity.

Preorders: an `expected_receipt` (supplier-feeds) announces units due at a date; the SKU's
queue accepts waiting orders against it, in the order they reach the queue, never beyond the
units announced and not yet claimed, and tells the order (`preorder_accepted`, with the date
the covering supply is due). Accepted preorders get the SKU's turns before the other waiting
orders (a commitment on that supply). A receipt at the location settles what was announced
there (earliest due first); a short one ends that announcement, and the youngest preorders it
no longer covers fall back to plain backorders, keeping their place: each such order is told
(`Dropped`, a PreorderDropped), so it stops promising the date of supply that will not come,
until a later announcement covers it (a new acceptance, with that supply's date). A supply
still not in once the network clock passes the end of its expected day (plus the policy's
`late_grace_days`) is late: the queue stops counting on it (no preorder is accepted on it any
more) and drops the preorders it was covering the same way (`Dropped` with reason `late`);
when its receipt does come, its units are plain stock.

An order may also ask for a preorder (`lines[].preorder`): the SKU's queue, the one owner
that knows what is left, grants the ask whole on the units expected and not yet claimed (the
order joins with its claim) or refuses it with what was left, and the order is then refused
whole. No view decides it: a lagging view would refuse supply that was just announced.

A line waits at most `max_wait_days` of network time: the order's expiry check (the order
agent's timer schedules it by wall clock, the order machine decides by its network time)
makes it `unroutable` with the reason `backorder_expired`.

Pure: the queue's transitions here, their effects are carried out by the agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY_S = 86400.0
KEEP_SETTLED = 200  # receipt ids a queue remembers (a re-read after a crash is recent)
KEEP_LATE = 200  # late announcements a queue remembers (a receipt that never came is forgotten)
# decide()'s reasons that mean "not now" rather than "never" (domain/routing.py)
WAITABLE = frozenset(
    {"insufficient_stock", "needs_split", "too_many_shipments", "contended", "behind_backorders"}
)


@dataclass(frozen=True)
class Rule:
    enabled: bool = False
    max_wait_days: float = 14.0


@dataclass(frozen=True)
class BackorderPolicy:
    """`backorder: {enabled, max_wait_days, late_grace_days, channels: {web: {enabled,
    max_wait_days}}}`. `late_grace_days`: how long after the end of its expected day (at the
    supply's location) an announced receipt may still come before it is late (a property of
    the supply, not of a channel: one figure)."""

    enabled: bool = False
    max_wait_days: float = 14.0
    channels: Mapping[str, Rule] = field(default_factory=dict)
    late_grace_days: float = 0.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BackorderPolicy:
        """Strict like the rest of the policy: unknown keys and wrong types are errors."""
        grace = data.get("late_grace_days", 0.0)
        if (
            isinstance(grace, bool)
            or not isinstance(grace, int | float)
            or not math.isfinite(grace)
            or grace < 0
        ):
            raise ValueError("routing policy: backorder.late_grace_days must be a number >= 0")
        data = {k: v for k, v in data.items() if k != "late_grace_days"}
        base = _rule(data, {"enabled", "max_wait_days", "channels"}, "backorder")
        channels = data.get("channels") or {}
        if not isinstance(channels, Mapping):
            raise ValueError("routing policy: backorder.channels must be a mapping")
        rules = {
            str(ch): _rule(
                {"enabled": base.enabled, "max_wait_days": base.max_wait_days, **dict(v or {})},
                {"enabled", "max_wait_days"},
                f"backorder.channels.{ch}",
            )
            for ch, v in channels.items()
        }
        return cls(base.enabled, base.max_wait_days, rules, float(grace))

    def rule(self, channel: str) -> Rule:
        return self.channels.get(channel) or Rule(self.enabled, self.max_wait_days)

    @property
    def anywhere(self) -> bool:
        """Enabled for some channel: location owners then signal stock coming back."""
        return self.enabled or any(r.enabled for r in self.channels.values())


def _rule(data: Mapping[str, Any], allowed: set[str], where: str) -> Rule:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"routing policy: unknown keys {unknown} in {where}")
    enabled = data.get("enabled", False)
    days = data.get("max_wait_days", 14.0)
    if not isinstance(enabled, bool):
        raise ValueError(f"routing policy: {where}.enabled must be true or false")
    if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
        raise ValueError(f"routing policy: {where}.max_wait_days must be a number > 0")
    return Rule(enabled, float(days))


def late_after(due: float, tz: str, grace_days: float) -> float:
    """When announced supply due at `due` (epoch s) is late if not in: the end of its expected
    day in `tz` (the supply location's time zone: a delivery promised for Tuesday may come
    any time on Tuesday), plus `grace_days`."""
    day = datetime.fromtimestamp(due, ZoneInfo(tz)).date() + timedelta(days=1)
    end = datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
    return end.timestamp() + grace_days * DAY_S


def placeable(lines: Mapping[str, int], available: Mapping[str, int]) -> dict[str, int]:
    """The lines the network holds enough units of right now (`available`: sku -> units over
    all locations): what a split-allowed order ships first while the rest waits."""
    return {sku: qty for sku, qty in lines.items() if available.get(sku, 0) >= qty}


# ---- the per-SKU queue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A preorder accepted on expected supply (preorder_accepted to the order)."""

    order_id: str
    qty: int
    due: float  # epoch s: when the supply that covers it is due
    location_id: str | None  # where it is due (None: a claim whose supply already landed)


@dataclass(frozen=True)
class Dropped:
    """A preorder dropped back to a plain backorder (PreorderDropped): by a short receipt, or
    because the supply covering it is `late`."""

    order_id: str
    qty: int
    reason: str = "short_receipt"


@dataclass(frozen=True)
class Retry:
    """Hand the SKU's turn to an order (order-commands)."""

    order_id: str
    sku: str
    ticket: int  # grows per SKU: the order in which the queue gave turns
    available: Mapping[str, int] = field(default_factory=dict)  # location -> last signalled


@dataclass
class Queue:
    """One SKU's waiting orders, oldest first, and the one retry in flight."""

    sku: str
    entries: list[list[Any]] = field(default_factory=list)  # [since epoch s, order_id, qty]
    in_flight: str | None = None
    ticket: int = 0
    again: bool = False  # stock came back while a retry was in flight: retry the head again
    seen: dict[str, int] = field(default_factory=dict)  # location -> available, last signalled
    # preorders: supply announced ("<event_id>@<location>" -> [location, qty left, due epoch s])
    # and the waiting orders accepted against it (order_id -> qty)
    expected: dict[str, list[Any]] = field(default_factory=dict)
    claims: dict[str, int] = field(default_factory=dict)
    # what each claim was told: order_id -> [due epoch s, location] of the supply covering it
    # (re-sent after a crash: an acceptance lost with its worker, agents/backorders.py)
    dues: dict[str, list[Any]] = field(default_factory=dict)
    landed: int = 0  # announced units that arrived and are not yet routed to their preorders
    settled: list[str] = field(default_factory=list)  # receipts applied (the last KEEP_SETTLED)
    positions: dict[str, int] = field(default_factory=dict)
    # claims a short receipt dropped (order_id -> qty), until claimed again or gone: the drop
    # notices are sent again after a crash, like the acceptances
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_late: list[str] = field(default_factory=list)  # of those, dropped as late
    # announced supply past its day that has not come ("<event_id>@<location>" -> [location,
    # qty, due]): counted on no more; the receipt that settles it lands as plain stock
    late: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "entries": [list(e) for e in self.entries],
            "in_flight": self.in_flight,
            "ticket": self.ticket,
            "again": self.again,
            "seen": dict(self.seen),
            "expected": {k: list(v) for k, v in self.expected.items()},
            "claims": dict(self.claims),
            "dues": {k: list(v) for k, v in self.dues.items()},
            "landed": self.landed,
            "settled": list(self.settled),
            "positions": dict(self.positions),
            "dropped": dict(self.dropped),
            "dropped_late": list(self.dropped_late),
            "late": {k: list(v) for k, v in self.late.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Queue:
        return cls(
            sku=d["sku"],
            entries=[list(e) for e in d["entries"]],
            in_flight=d.get("in_flight"),
            ticket=int(d.get("ticket", 0)),
            again=bool(d.get("again", False)),
            seen=dict(d.get("seen") or {}),
            expected={k: list(v) for k, v in (d.get("expected") or {}).items()},
            claims=dict(d.get("claims") or {}),
            dues={k: list(v) for k, v in (d.get("dues") or {}).items()},  # from before 2026-12
            landed=int(d.get("landed", 0)),
            settled=list(d.get("settled") or []),
            positions=dict(d.get("positions") or {}),
            dropped=dict(d.get("dropped") or {}),  # from before 2026-12
            dropped_late=list(d.get("dropped_late") or []),  # from before late receipts
            late={k: list(v) for k, v in (d.get("late") or {}).items()},
        )

    # -- derived ----------------------------------------------------------------------------------
    @property
    def units(self) -> int:
        return sum(int(e[2]) for e in self.entries)

    @property
    def oldest_since(self) -> float | None:
        return self.entries[0][0] if self.entries else None

    def retry(self) -> Retry | None:
        """The retry in flight (re-sent after a crash or when its answer is overdue)."""
        if self.in_flight is None:
            return None
        return Retry(self.in_flight, self.sku, self.ticket, dict(self.seen))

    # -- transitions ------------------------------------------------------------------------------
    def wait(self, order_id: str, qty: int, since: float) -> Retry | None:
        """The order waits for `qty` units (joins, or answers a retry it could not use)."""
        for e in self.entries:
            if e[1] == order_id:
                e[2] = qty
                if order_id in self.claims:
                    self.claims[order_id] = min(self.claims[order_id], qty)
                    self._clamp_landed()
                break
        else:
            self.entries.append([since, order_id, qty])
            self.entries.sort(key=lambda e: (e[0], e[1]))
            if len(self.entries) == 1 and self.in_flight is None:
                # the first one waiting: it may have waited on a lagging view of this queue
                # or of the stock, so it gets a turn at once (no news of stock may follow)
                return self._kick()
        if self.in_flight == order_id:
            self.in_flight = None
            if self.again:
                return self._kick()
        return None

    def leave(self, order_id: str) -> Retry | None:
        """The order no longer waits (routed, cancelled, expired): the next one gets its turn."""
        self.landed = max(0, self.landed - self.claims.pop(order_id, 0))
        self._clamp_landed()
        self._undrop(order_id)
        was_head = self._head() == order_id
        self.entries = [e for e in self.entries if e[1] != order_id]
        if self.in_flight == order_id or (was_head and self.in_flight is None):
            self.in_flight = None
            return self._kick()
        return None

    def shrink(self, order_id: str, qty: int) -> None:
        """The order's line was cancelled in part: it waits for `qty` units now, and a claim
        beyond them is given back (to be claimed by the next waiting orders). No news for an
        order not in the queue (a preorder ask refused, or not yet read: asked again smaller).
        Unlike `wait`, it never answers the turn in flight."""
        for e in self.entries:
            if e[1] == order_id:
                e[2] = min(int(e[2]), qty)
                if order_id in self.claims:
                    self.claims[order_id] = min(self.claims[order_id], qty)
                    self._clamp_landed()
                return

    def stock_up(self, location_id: str, available: int, by: str | None = None) -> Retry | None:
        """Units of the SKU became available at a location (`available` there now). `by`: the
        order whose released reservations alone caused it; the head giving back what its own
        failed turn took is no news (else it would be handed its turn again, forever)."""
        self.seen[location_id] = available
        if by is not None and by in (self.in_flight, self._head()):
            return None
        if self.in_flight is not None:
            self.again = True
            return None
        return self._kick()

    # -- preorders ---------------------------------------------------------------------------------
    def expect(self, ref: str, location_id: str, qty: int, due: float) -> None:
        """Supply announced (an expected_receipt line); a re-read of the same one is no news
        (nor is one already late)."""
        key = f"{ref}@{location_id}"
        if key not in self.late:
            self.expected.setdefault(key, [location_id, qty, due])

    def arrived(self, ref: str, location_id: str, qty: int) -> list[Dropped]:
        """A receipt settles what was expected at its location, earliest due first: a short
        receipt ends that expectation (the supplier delivered what it delivered), so the
        preorders it cannot cover fall back to plain backorders, in their place: the dropped
        ones, youngest first (each order is told: its promised date no longer holds). Supply
        already late is settled too, but its units are plain stock (its preorders were
        dropped when it became late)."""
        if ref in self.settled:
            return []
        self.settled = [*self.settled[-(KEEP_SETTLED - 1) :], ref]
        here = sorted(
            [(v[2], k, self.expected) for k, v in self.expected.items() if v[0] == location_id]
            + [(v[2], k, self.late) for k, v in self.late.items() if v[0] == location_id],
            key=lambda h: (h[0], h[1]),
        )
        for i, (_, key, source) in enumerate(here):
            if i and qty <= 0:
                break
            take = min(qty, int(source[key][1]))
            source[key][1] -= take
            if i == 0 or not source[key][1]:
                del source[key]  # the first is settled whole: a short receipt ends it
            if source is self.expected:
                self.landed += take
            qty -= take
        dropped: list[Dropped] = []
        while self.claims and sum(self.claims.values()) > self.expected_units + self.landed:
            youngest = next(e[1] for e in reversed(self.entries) if e[1] in self.claims)
            dropped.append(self._drop(youngest, "short_receipt"))
        self._clamp_landed()
        return dropped

    def overdue(self, now: float, late_at: Callable[[str, float], float]) -> list[Dropped]:
        """The network clock is at `now`: announced supply not in by `late_at(location, due)`
        is late. The queue counts on it no more (no preorder is accepted on it) and drops
        the claims it was covering, as a short receipt would (youngest first; each order is
        told, reason `late`), except those the units already landed cover (the oldest claims
        first, as turns go). They wait on in their place as plain backorders. Idempotent:
        supply late once is never late again."""
        gone = {k: v for k, v in self.expected.items() if late_at(str(v[0]), float(v[2])) <= now}
        if not gone:
            return []
        for key in gone:
            self.late[key] = self.expected.pop(key)
        while len(self.late) > KEEP_LATE:  # a receipt never came: forget the oldest
            del self.late[min(self.late, key=lambda k: (self.late[k][2], k))]
        stale = {(float(v[2]), str(v[0])) for v in gone.values()}
        covered: set[str] = set()
        in_stock = self.landed
        for e in self.entries:  # the landed units go to the oldest claims, as turns do
            qty = self.claims.get(e[1], 0)
            if qty > in_stock:
                break
            if qty:
                covered.add(e[1])
                in_stock -= qty
        dropped = [
            self._drop(e[1], "late")
            for e in reversed(self.entries)
            if e[1] in self.claims and e[1] not in covered and self._told_of(e[1]) in stale
        ]
        while self.claims and sum(self.claims.values()) > self.expected_units + self.landed:
            youngest = next(e[1] for e in reversed(self.entries) if e[1] in self.claims)
            dropped.append(self._drop(youngest, "late"))
        self._clamp_landed()
        return dropped

    def _told_of(self, order_id: str) -> tuple[float, str] | None:
        """The due date and location the claim was told (None: a claim from before 2026-12)."""
        told = self.dues.get(order_id)
        return None if told is None else (float(told[0]), str(told[1]))

    def _drop(self, order_id: str, reason: str) -> Dropped:
        """The order's claim is given up: it waits on as a plain backorder, and is told."""
        drop = Dropped(order_id, self.claims.pop(order_id), reason)
        self.dues.pop(order_id, None)
        self._undrop(order_id)
        self.dropped[order_id] = drop.qty
        if reason == "late":
            self.dropped_late.append(order_id)
        return drop

    def _undrop(self, order_id: str) -> None:
        self.dropped.pop(order_id, None)
        if order_id in self.dropped_late:
            self.dropped_late.remove(order_id)

    def drops(self) -> list[Dropped]:
        """The drops not yet followed by a new claim (sent again after a crash; an order
        ignores one it has applied)."""
        return [
            Dropped(o, q, "late" if o in self.dropped_late else "short_receipt")
            for o, q in sorted(self.dropped.items())
        ]

    def _clamp_landed(self) -> None:
        """Units that landed beyond what the preorders claim are plain stock (their turns
        come from stock_up): never claimable, nor counted against later announcements."""
        self.landed = min(self.landed, sum(self.claims.values()))

    @property
    def expected_units(self) -> int:
        return sum(int(v[1]) for v in self.expected.values())

    def claim(self) -> list[Accepted]:
        """Accept waiting orders as preorders on the supply expected and not yet claimed,
        oldest first, never beyond it (the first that does not fit stops the others: first
        come first served), each with the due date and location of the supply covering it."""
        self.dues = {k: v for k, v in self.dues.items() if k in self.claims}
        accepted: list[Accepted] = []
        claimed = sum(self.claims.values()) - self.landed
        for _, order_id, qty in self.entries:
            if order_id in self.claims:
                continue
            if claimed + qty > self.expected_units:
                break
            claimed += qty
            accepted.append(self._accept(order_id, qty, claimed))
        return accepted

    @property
    def unclaimed(self) -> int:
        """Units expected and not yet claimed by a preorder: what a preorder may still get."""
        return self.expected_units - (sum(self.claims.values()) - self.landed)

    def preorder(self, order_id: str, qty: int, since: float) -> Accepted | int:
        """An order asks for `qty` units as a preorder: granted in full on the supply expected
        and not yet claimed (the order joins the queue with its claim, in its place by
        `since`), else refused whole: the units that were left (nothing joins). Asked again
        (a re-sent ask) it is granted again if it holds its claim."""
        if order_id in self.claims:
            return Accepted(order_id, self.claims[order_id], *self._told(order_id))
        left = self.unclaimed
        if qty > left or any(e[1] == order_id for e in self.entries):
            return max(0, left)
        self.entries.append([since, order_id, qty])
        self.entries.sort(key=lambda e: (e[0], e[1]))
        return self._accept(order_id, qty, sum(self.claims.values()) - self.landed + qty)

    def acceptances(self) -> list[Accepted]:
        """Every claim's acceptance as told (sent again after a crash; the order side ignores
        one it already has)."""
        told = [
            Accepted(e[1], self.claims[e[1]], *self._told(e[1]))
            for e in self.entries
            if e[1] in self.claims
        ]
        return [a for a in told if a.due]  # (0: an old claim whose supply is all in)

    def _accept(self, order_id: str, qty: int, through: int) -> Accepted:
        due, location_id = self._source(through)
        self.claims[order_id] = qty
        self._undrop(order_id)
        self.dues[order_id] = [due, location_id]
        return Accepted(order_id, qty, due, location_id)

    def _told(self, order_id: str) -> tuple[float, str | None]:
        told = self.dues.get(order_id)
        if told is None:  # a claim from before 2026-12: the latest supply expected covers it
            return self._source(sum(self.claims.values()) - self.landed)
        return float(told[0]), told[1]

    def _source(self, through: int) -> tuple[float, str | None]:
        """The due date and location of the expected supply that reaches `through` units,
        earliest due first (the last one when none does; (0, None) when nothing is expected)."""
        total = 0
        last: tuple[float, str | None] = (0.0, None)
        for location_id, qty, due in sorted(self.expected.values(), key=lambda v: v[2]):
            total += qty
            last = (float(due), str(location_id))
            if total >= through:
                break
        return last

    def _head(self) -> str | None:
        """Whose turn is next: accepted preorders first (a commitment on the supply), then
        the other waiting orders, each oldest first."""
        for e in self.entries:
            if e[1] in self.claims:
                return str(e[1])
        return str(self.entries[0][1]) if self.entries else None

    def _kick(self) -> Retry | None:
        self.again = False
        head = self._head()
        if head is None:
            return None
        self.in_flight = head
        self.ticket += 1
        return Retry(self.in_flight, self.sku, self.ticket, dict(self.seen))
