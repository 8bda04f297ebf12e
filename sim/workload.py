"""A deterministic trading day (or week) of a retailer, as input events over simulated time.

The generator is the shared workload of the demo and the benchmarks, so it has to be fast
(>= 20k events/s in pure Python: it builds JSON-ready dicts directly and never runs pydantic),
reproducible (one seed, one sequence, however the caller slices time) and realistic enough that
routing decisions mean something: demand is skewed (Zipf-Mandelbrot over SKUs), customers live
where people live, tills only ring during opening hours and web orders follow the daily curve of
a French webshop (quiet at night, evening peak).

Time is generated in whole simulated minutes (epoch-aligned buckets) from one RNG consumed in
bucket order, so `events_between(t0, t1)` returns the same events whether it is called once for a
day or once per real-time tick. Events that fall later than their bucket (cancellations,
scheduled receipts) wait in a heap until their time comes.

What the generator cannot know (what was routed where, what shipped) comes back from outside:
returns are produced by the staff model (sim/staff.py), and replenishment can follow the units
the staff actually shipped (`record_consumption`) instead of an estimate.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sim.network import CITIES, nearest, store_hours
from streams.records import MAX_LINES, Location, LocationCalendar, interval_minutes
from streams.topics import TOPICS, AnyTopic

__all__ = [
    "CHANNELS",
    "Catalogue",
    "Emission",
    "OpeningHours",
    "Workload",
    "event_namespace",
    "initial_stock",
    "iso",
    "stock_plan",
    "store_traffic",
]

Emission = tuple[AnyTopic, str, dict[str, Any]]
"""(topic handle, message key, JSON-ready value): what the runner produces to Kafka."""

BUCKET_S = 60

# Web orders per hour of the day, relative (normalised to a mean of 1 below): a French webshop
# sleeps from 2 to 5, climbs through the morning, bumps at lunch and peaks after dinner.
_WEB_CURVE_RAW = (
    0.35, 0.20, 0.12, 0.08, 0.08, 0.12, 0.30, 0.55, 0.80, 1.00, 1.10, 1.15,
    1.30, 1.30, 1.10, 1.05, 1.05, 1.15, 1.30, 1.55, 1.85, 1.95, 1.50, 0.85,
)  # fmt: skip
_WEB_CURVE = tuple(w * 24 / sum(_WEB_CURVE_RAW) for w in _WEB_CURVE_RAW)

# Till traffic within opening hours: lunch and after-work rushes.
_POS_CURVE = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.7, 0.8, 1.0,
    1.4, 1.3, 0.9, 0.9, 1.0, 1.3, 1.5, 1.2, 0.9, 0.7, 0.0, 0.0,
)  # fmt: skip
_SATURDAY = 1.35

_ORDER_LINES = ((1, 2, 3, 4), (0.55, 0.82, 0.94, 1.0))  # values, cumulative weights
_POS_LINES = ((1, 2, 3), (0.60, 0.88, 1.0))
_QTY = ((1, 2, 3), (0.88, 0.98, 1.0))
_PAYMENT = (("card", "paypal", "apple_pay", "gift_card"), (0.68, 0.84, 0.95, 1.0))
_CHANNEL = (("web", "app", "store"), (0.55, 0.92, 1.0))
CHANNELS = _CHANNEL[0]
_PICKUP_CHOICE = (0.6, 0.85, 1.0)  # of the three nearest click & collect stores
_AVG_UNITS_PER_ORDER = 1.85
_AVG_UNITS_PER_TICKET = 1.65


def _pick(cum: Sequence[float], r: float) -> int:
    return bisect_right(cum, r * cum[-1])


def iso(ts: float) -> str:
    """Epoch seconds to the ISO-8601 UTC text the contract expects (millisecond precision)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def event_namespace(seed: int, run_id: str, part: str) -> uuid.UUID:
    """uuid5 namespace for event ids: same seed and run_id, same ids.

    run_id exists because the worker deduplicates by event_id: a second demo run with the same
    seed against the same broker must not be silently swallowed as duplicates.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, f"stockroute-sim:{seed}:{run_id}:{part}")


def store_traffic(loc: Location) -> float:
    """Relative footfall of a store; bigger online capacity goes with bigger shops."""
    return 0.5 + loc.capacity_per_hour / 30.0


class Catalogue:
    """SKUs with skewed demand and prices.

    Demand follows Zipf-Mandelbrot (1/(rank+q)^s): q flattens the head so the best seller is
    about 1% of demand, not the 10% a pure Zipf over 5,000 items gives, which matches retail
    assortments better. Popularity ranks are shuffled over the SKU ids so "SKU-00001" is not
    special.
    """

    def __init__(self, seed: int, skus: int = 5000, *, zipf_s: float = 1.0, zipf_q: float = 20.0):
        if skus < 1:
            raise ValueError("a catalogue needs at least one SKU")
        rng = random.Random(f"stockroute-catalogue:{seed}")
        width = max(5, len(str(skus)))
        self.skus: list[str] = [f"SKU-{i + 1:0{width}d}" for i in range(skus)]
        ranks = list(range(skus))
        rng.shuffle(ranks)
        self.rank: list[int] = ranks
        raw = [1.0 / (r + 1 + zipf_q) ** zipf_s for r in ranks]
        total = sum(raw)
        self.share: list[float] = [w / total for w in raw]
        self.cum_weights: list[float] = list(itertools.accumulate(self.share))
        self.by_popularity: list[int] = sorted(range(skus), key=lambda i: ranks[i])
        self.prices: list[float] = [
            round(max(1.0, round(math.exp(rng.gauss(math.log(25.0), 0.8)))) - 0.01, 2)
            for _ in range(skus)
        ]
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.skus)}

    def __len__(self) -> int:
        return len(self.skus)

    def sample(self, rng: random.Random) -> int:
        """One SKU index drawn by demand weight."""
        return _pick(self.cum_weights, rng.random())


def stock_plan(
    network: Sequence[Location],
    catalogue: Catalogue,
    seed: int,
    *,
    web_orders_per_hour: float = 240.0,
    pos_sales_per_store_hour: float = 30.0,
    days_of_cover: float = 2.0,
) -> dict[str, dict[int, int]]:
    """Opening stock per location: {location_id: {sku index: units}}.

    Warehouses hold almost everything, sized on web demand; stores hold their popular subset,
    sized on their own till demand (plus safety stock so the shelf is not empty online); suppliers
    hold the long tail deeply (that is why a retailer uses drop-ship at all). The workload uses the
    same plan to know each store's assortment, so tills sell what the shelves carry.
    """
    rng = random.Random(f"stockroute-stock:{seed}")
    n = len(catalogue)
    web_units_day = web_orders_per_hour * 24 * _AVG_UNITS_PER_ORDER
    warehouses = [loc for loc in network if loc.kind == "warehouse"]
    wh_cap = sum(max(1, w.capacity_per_hour) for w in warehouses) or 1
    pop = catalogue.by_popularity
    plan: dict[str, dict[int, int]] = {}
    for loc in network:
        held: dict[int, int] = {}
        if loc.kind == "warehouse":
            part = max(1, loc.capacity_per_hour) / wh_cap
            for rank, i in enumerate(pop):
                if rng.random() < (0.97 if rank < n // 5 else 0.85):
                    expect = web_units_day * catalogue.share[i] * part * days_of_cover
                    held[i] = math.ceil(expect * 1.2) + rng.randint(2, 10)
        elif loc.kind == "store":
            size = min(n, 250 + 15 * loc.capacity_per_hour)
            chosen = [i for i in pop[:size] if rng.random() < 0.9]
            chosen += rng.sample(pop[size:], min(30, max(0, n - size)))
            in_store = sum(catalogue.share[i] for i in chosen) or 1.0
            units_day = pos_sales_per_store_hour * store_traffic(loc) * 11 * _AVG_UNITS_PER_TICKET
            for i in chosen:
                expect = units_day * catalogue.share[i] / in_store * 1.5
                held[i] = math.ceil(expect) + loc.safety_stock + rng.randint(1, 3)
        elif loc.kind == "supplier":
            for i in pop[n // 10 :]:
                if rng.random() < 0.6:
                    held[i] = rng.randint(20, 200)
        else:  # marketplace
            for i in pop:
                if rng.random() < 0.3:
                    held[i] = rng.randint(5, 50)
        plan[loc.location_id] = held
    return plan


def _receipts(
    location_id: str,
    units: dict[str, int],
    ts: float,
    ids: uuid.UUID,
    tag: str,
) -> list[dict[str, Any]]:
    """Receipt messages for a location, at most MAX_LINES lines each, lines sorted by SKU."""
    lines = [{"sku": s, "qty": q} for s, q in sorted(units.items()) if q > 0]
    out = []
    for k in range(0, len(lines), MAX_LINES):
        out.append(
            {
                "event_id": str(uuid.uuid5(ids, f"{tag}:{location_id}:{k // MAX_LINES}")),
                "occurred_at": iso(ts),
                "type": "receipt",
                "location_id": location_id,
                "lines": lines[k : k + MAX_LINES],
            }
        )
    return out


def initial_stock(
    network: Sequence[Location],
    catalogue: Catalogue,
    seed: int,
    *,
    at: datetime | None = None,
    run_id: str = "",
    web_orders_per_hour: float = 240.0,
    pos_sales_per_store_hour: float = 30.0,
) -> list[dict[str, Any]]:
    """The opening stock as supplier-feeds receipts (key: their location_id).

    Receipts rather than stock counts so loading it twice into a fresh system is visibly wrong
    only if idempotency is broken: the event ids are deterministic for seed and run_id.
    """
    when = (at or datetime.now(UTC)).timestamp()
    plan = stock_plan(
        network,
        catalogue,
        seed,
        web_orders_per_hour=web_orders_per_hour,
        pos_sales_per_store_hour=pos_sales_per_store_hour,
    )
    ids = event_namespace(seed, run_id, "initial-stock")
    out: list[dict[str, Any]] = []
    for loc in network:
        units = {catalogue.skus[i]: q for i, q in plan[loc.location_id].items()}
        out.extend(_receipts(loc.location_id, units, when, ids, "initial"))
    return out


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Minutes since local midnight; Sunday is closed unless `sunday` is set (French trading)."""

    open_min: int
    close_min: int
    sunday: tuple[int, int] | None = None

    def window(self, weekday: int) -> tuple[int, int] | None:
        if weekday == 6:
            return self.sunday
        return self.open_min, self.close_min

    def is_open(self, weekday: int, minute_of_day: int) -> bool:
        w = self.window(weekday)
        return w is not None and w[0] <= minute_of_day < w[1]


def _calendar_hours(cal: LocationCalendar) -> OpeningHours | None:
    """A store calendar's Monday-to-Saturday opening and its Sunday, as the till model reads
    them (first opening to last closing of the day: the generated calendars have one interval)."""
    days = [cal.opening.get(d) for d in ("mon", "sun")]
    if not days[0]:
        return None
    week = [interval_minutes(iv) for iv in days[0]]
    sunday = [interval_minutes(iv) for iv in days[1] or ()]
    return OpeningHours(
        min(a for a, _ in week),
        max(b for _, b in week),
        (min(a for a, _ in sunday), max(b for _, b in sunday)) if sunday else None,
    )


class Workload:
    """Input events of the retailer between two simulated instants.

    Local wall-clock concerns (opening hours, the web curve, replenishment times) are read in
    `tz` (default: the stores' calendar time zone, else the time zone of `start`); till hours
    are the stores' calendars when they have one; `occurred_at` is always written in UTC.
    `replenish="demand"` (library default) replenishes warehouses for every web unit ordered, so
    a benchmark without a staff model does not run dry; `replenish="consumption"` replenishes
    exactly what `record_consumption` reports (the runner feeds it from the staff model).
    """

    def __init__(
        self,
        network: Sequence[Location],
        catalogue: Catalogue,
        seed: int,
        start: datetime,
        peak: bool = False,
        web_orders_per_hour: float = 240.0,
        *,
        peak_factor: float = 7.0,
        pos_peak_factor: float = 1.5,
        pos_sales_per_store_hour: float = 30.0,
        click_collect_share: float = 0.30,
        express_share: float = 0.15,
        cancel_rate: float = 0.02,
        partial_cancel_rate: float = 0.01,
        ship_complete_share: float = 0.05,
        asn_share: float = 0.5,
        asn_lead_h: float = 3.0,
        asn_short_share: float = 0.1,
        preorder_share: float = 0.03,
        preorder_channels: Collection[str] | None = None,
        replenish: Literal["demand", "consumption"] = "demand",
        store_replenish_hour: int = 6,
        warehouse_replenish_every_h: int = 4,
        currency: str = "EUR",
        run_id: str = "",
        tz: tzinfo | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (simulated wall clock)")
        if peak_factor < 1.0 or web_orders_per_hour < 0 or pos_sales_per_store_hour < 0:
            raise ValueError("rates must be >= 0 and peak_factor >= 1")
        if not 1 <= warehouse_replenish_every_h <= 24:
            raise ValueError("warehouse_replenish_every_h must be within 1..24")
        self.network = list(network)
        self.catalogue = catalogue
        self.seed = seed
        self.start = start
        zones = {loc.calendar.tz for loc in network if loc.calendar and loc.kind == "store"}
        self.tz: tzinfo = tz or (ZoneInfo(zones.pop()) if len(zones) == 1 else start.tzinfo)
        self.peak = peak
        self.peak_factor = peak_factor
        self.pos_peak_factor = pos_peak_factor
        self.web_orders_per_hour = web_orders_per_hour
        self.pos_sales_per_store_hour = pos_sales_per_store_hour
        self.click_collect_share = click_collect_share
        self.express_share = express_share
        self.cancel_rate = cancel_rate
        # order changes (issue 15): part of a line cancelled, "ship everything together",
        # warehouse receipts announced by the supplier first (an expected_receipt, the advance
        # shipping notice, asn_lead_h ahead; asn_short_share of them deliver 80 %)
        self.partial_cancel_rate = partial_cancel_rate
        self.ship_complete_share = ship_complete_share
        self.asn_share = asn_share
        self.asn_lead_h = asn_lead_h
        self.asn_short_share = asn_short_share
        # preorders: preorder_share of the orders with a line whose SKU has supply announced
        # and not yet due ask those lines as preorders (lines[].preorder), within the units
        # announced and not yet asked (a webshop sells the announced supply, not beyond)
        self.preorder_share = preorder_share
        # the channels whose orders may ask preorders (None: every one): those the workers'
        # policy enables backorders for (the engine refuses a preorder elsewhere)
        self.preorder_channels = None if preorder_channels is None else set(preorder_channels)
        self.replenish = replenish
        self.store_replenish_hour = store_replenish_hour
        self.warehouse_replenish_every_h = warehouse_replenish_every_h
        self.currency = currency
        self.run_id = run_id
        self.order_prefix = f"O{run_id}-" if run_id else "O-"

        self._rng = random.Random(f"stockroute-workload:{seed}")
        # its own stream, so the draws for order changes leave every other event unchanged
        self._changes_rng = random.Random(f"stockroute-workload-changes:{seed}")
        self._preorder_rng = random.Random(f"stockroute-workload-preorders:{seed}")
        # announced supply per SKU: [announced at, due, units not yet asked as preorders]
        self._supply: dict[str, list[list[float]]] = {}
        self._ids = event_namespace(seed, run_id, "workload")
        self._receipt_ids = event_namespace(seed, run_id, "replenishment")
        self._start_ts = start.timestamp()
        self._cursor = float(math.floor(self._start_ts / BUCKET_S) * BUCKET_S)
        self._until = -math.inf
        self._heap: list[tuple[float, int, AnyTopic, str, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._events = 0
        self._orders = 0
        self._receipt_rounds = 0
        self.consumed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

        self.stores = [loc for loc in self.network if loc.kind == "store" and loc.active]
        self.warehouses = [loc for loc in self.network if loc.kind == "warehouse" and loc.active]
        self.others = [loc for loc in self.network if loc.kind in ("supplier", "marketplace")]
        hours_rng = random.Random(f"stockroute-hours:{seed}")  # as sim/network.py draws them
        self.hours: dict[str, OpeningHours] = {}
        for s in self.stores:
            week, sunday = store_hours(hours_rng)
            drawn = OpeningHours(week[0], week[1], sunday)
            listed = _calendar_hours(s.calendar) if s.calendar is not None else None
            self.hours[s.location_id] = listed or drawn
        self._traffic = {s.location_id: store_traffic(s) for s in self.stores}

        plan = stock_plan(
            self.network,
            catalogue,
            seed,
            web_orders_per_hour=web_orders_per_hour,
            pos_sales_per_store_hour=pos_sales_per_store_hour,
        )
        # Till demand within a store: the store's assortment, weighted by catalogue demand.
        self._assort: dict[str, tuple[list[int], list[float]]] = {}
        for s in self.stores:
            items = sorted(plan[s.location_id])
            cum = list(itertools.accumulate(catalogue.share[i] for i in items))
            self._assort[s.location_id] = (items, cum)

        # Customers live where people live (undamped population), near the city centre.
        self._city_cum = list(itertools.accumulate(c.population_k for c in CITIES))
        self._city_spread = [(3.0 + 10.0 * min(1.0, c.population_k / 2000.0)) for c in CITIES]
        cc_stores = [s for s in self.stores if s.click_collect]
        self._city_cc = [
            [s.location_id for s in nearest(c.lat, c.lon, cc_stores, 3)] for c in CITIES
        ]
        self._wh_cum = list(
            itertools.accumulate(max(1, w.capacity_per_hour) for w in self.warehouses)
        )
        self._pos_cache: dict[tuple[int, int], tuple[list[str], list[float]]] = {}

    # ---- public ------------------------------------------------------------------------------

    def opening_hours(self, location_id: str, day: date) -> tuple[int, int] | None:
        """(open, close) in minutes since local midnight that day, or None when closed."""
        h = self.hours.get(location_id)
        return None if h is None else h.window(day.weekday())

    def is_open(self, location_id: str, when: datetime) -> bool:
        h = self.hours.get(location_id)
        lt = when.astimezone(self.tz)
        return h is not None and h.is_open(lt.weekday(), lt.hour * 60 + lt.minute)

    def web_rate(self, when: datetime) -> float:
        """Expected web orders per hour at `when` (curve x peak factor)."""
        return self._web_rate_per_s(when.astimezone(self.tz)) * 3600.0

    def initial_stock(self, at: datetime | None = None) -> list[dict[str, Any]]:
        """Opening-stock receipts sized on this workload's own rates."""
        return initial_stock(
            self.network,
            self.catalogue,
            self.seed,
            at=at or self.start,
            run_id=self.run_id,
            web_orders_per_hour=self.web_orders_per_hour,
            pos_sales_per_store_hour=self.pos_sales_per_store_hour,
        )

    def record_consumption(self, location_id: str, sku: str, qty: int) -> None:
        """Units that left a location (shipped, collected); the next receipt replaces them."""
        if qty > 0:
            self.consumed[location_id][sku] += qty

    def events_between(self, t0: datetime, t1: datetime) -> list[Emission]:
        """Events with t0 <= occurred_at < t1, in time order.

        Time only moves forward: events earlier than the previous call's t1 were already
        returned, and events before t0 (a skipped interval) are dropped, not replayed.
        """
        lo, hi = t0.timestamp(), t1.timestamp()
        while self._cursor < hi:
            self._bucket(self._cursor)
            self._cursor += BUCKET_S
        lo = max(lo, self._until)
        self._until = max(self._until, hi)
        out: list[Emission] = []
        heap = self._heap
        while heap and heap[0][0] < hi:
            ts, _, topic, key, value = heapq.heappop(heap)
            if ts >= lo:
                out.append((topic, key, value))
        return out

    @property
    def orders_placed(self) -> int:
        return self._orders

    # ---- generation --------------------------------------------------------------------------

    def _push(self, ts: float, topic: AnyTopic, key: str, value: dict[str, Any]) -> None:
        heapq.heappush(self._heap, (ts, next(self._seq), topic, key, value))

    def _event_id(self) -> str:
        self._events += 1
        return str(uuid.uuid5(self._ids, str(self._events)))

    def _web_rate_per_s(self, lt: datetime) -> float:
        h = lt.hour
        frac = lt.minute / 60.0
        curve = _WEB_CURVE[h] + (_WEB_CURVE[(h + 1) % 24] - _WEB_CURVE[h]) * frac
        factor = self.peak_factor if self.peak else 1.0
        return self.web_orders_per_hour * factor * curve / 3600.0

    def _open_stores(self, weekday: int, minute: int) -> tuple[list[str], list[float]]:
        key = (weekday, minute)
        hit = self._pos_cache.get(key)
        if hit is None:
            ids = [s for s, h in self.hours.items() if h.is_open(weekday, minute)]
            shape = _POS_CURVE[minute // 60] * (_SATURDAY if weekday == 5 else 1.0)
            if self.peak:
                shape *= self.pos_peak_factor
            per_h = self.pos_sales_per_store_hour * shape
            cum = list(itertools.accumulate(self._traffic[s] * per_h / 3600.0 for s in ids))
            hit = self._pos_cache[key] = (ids, cum)
        return hit

    def _bucket(self, b0: float) -> None:
        """Generate one simulated minute; consumes the RNG in a fixed order."""
        rng = self._rng
        lt = datetime.fromtimestamp(b0, self.tz)
        weekday, minute = lt.weekday(), lt.hour * 60 + lt.minute
        b1 = b0 + BUCKET_S
        lo = self._start_ts

        if b0 + BUCKET_S > lo:
            self._replenish(b0, lt)

        ids, cum = self._open_stores(weekday, minute)
        if ids and cum[-1] > 0:
            rate = cum[-1]
            t = b0 + rng.expovariate(rate)
            while t < b1:
                store = ids[_pick(cum, rng.random())]
                if t >= lo:
                    self._pos_sale(t, store)
                t += rng.expovariate(rate)

        rate = self._web_rate_per_s(lt)
        if rate > 0:
            t = b0 + rng.expovariate(rate)
            while t < b1:
                if t >= lo:
                    self._web_order(t)
                t += rng.expovariate(rate)

    def _pos_sale(self, t: float, store: str) -> None:
        rng = self._rng
        items, cum = self._assort[store]
        if not items:
            return
        n = _POS_LINES[0][_pick(_POS_LINES[1], rng.random())]
        lines: dict[str, int] = {}
        skus = self.catalogue.skus
        consumed = self.consumed[store]
        for _ in range(n):
            sku = skus[items[_pick(cum, rng.random())]]
            q = 1 if rng.random() < 0.9 else 2
            lines[sku] = lines.get(sku, 0) + q
            consumed[sku] += q
        self._push(
            t,
            TOPICS.pos_sales,
            store,
            {
                "event_id": self._event_id(),
                "occurred_at": iso(t),
                "location_id": store,
                "lines": [{"sku": s, "qty": q} for s, q in lines.items()],
            },
        )

    def _web_order(self, t: float) -> None:
        rng = self._rng
        cat = self.catalogue
        self._orders += 1
        order_id = f"{self.order_prefix}{self._orders:08d}"
        ci = _pick(self._city_cum, rng.random())
        city = CITIES[ci]
        spread = self._city_spread[ci]
        lat = round(city.lat + rng.gauss(0.0, spread / 111.0), 5)
        lon = round(city.lon + rng.gauss(0.0, spread / (111.0 * math.cos(math.radians(lat)))), 5)
        channel = _CHANNEL[0][_pick(_CHANNEL[1], rng.random())]
        delivery: dict[str, Any]
        cc = self._city_cc[ci]
        cc_share = self.click_collect_share * (0.5 if channel == "store" else 1.0)
        if cc and rng.random() < cc_share:
            pickup = cc[min(len(cc) - 1, _pick(_PICKUP_CHOICE, rng.random()))]
            delivery = {
                "mode": "click_collect",
                "pickup_location_id": pickup,
                "service": "standard",
            }
        else:
            service = "express" if rng.random() < self.express_share else "standard"
            delivery = {"mode": "home", "service": service}
        n = _ORDER_LINES[0][_pick(_ORDER_LINES[1], rng.random())]
        lines: dict[int, int] = {}
        for _ in range(n):
            i = cat.sample(rng)
            lines[i] = lines.get(i, 0) + _QTY[0][_pick(_QTY[1], rng.random())]
        method = _PAYMENT[0][_pick(_PAYMENT[1], rng.random())]
        value = {
            "event_id": self._event_id(),
            "occurred_at": iso(t),
            "type": "order_placed",
            "order_id": order_id,
            "channel": channel,
            "customer": {
                "lat": lat,
                "lon": lon,
                "postcode": f"{city.dept}{rng.randrange(0, 1000):03d}",
            },
            "delivery": delivery,
            "lines": [
                {"sku": cat.skus[i], "qty": q, "unit_price": cat.prices[i]}
                for i, q in lines.items()
            ],
            "currency": self.currency,
            "payment": {"method": method, "reference": f"pay_{rng.getrandbits(64):016x}"},
        }
        self._preorders(t, value)
        partial = self._order_changes(t, order_id, channel, value)
        self._push(t, TOPICS.web_orders, order_id, value)
        if self.replenish == "demand" and self.warehouses:
            wh = self.warehouses[_pick(self._wh_cum, rng.random())].location_id
            consumed = self.consumed[wh]
            for i, q in lines.items():
                consumed[cat.skus[i]] += q
        whole = rng.random() < self.cancel_rate
        if partial is not None and not whole:  # never both: one of them would be refused
            self._push(*partial)
        if whole:
            # Most cancellations come within minutes ("wrong size"), a few within the hour.
            delay = min(3600.0, max(30.0, rng.lognormvariate(math.log(300.0), 0.9)))
            tc = t + delay
            self._push(
                tc,
                TOPICS.web_orders,
                order_id,
                {
                    "event_id": self._event_id(),
                    "occurred_at": iso(tc),
                    "type": "order_cancelled",
                    "order_id": order_id,
                    "channel": channel,
                },
            )

    def _order_changes(
        self, t: float, order_id: str, channel: str, value: dict[str, Any]
    ) -> tuple[float, AnyTopic, str, dict[str, Any]] | None:
        """ship_complete on some multi-line home orders; a partial cancellation (one unit of
        one line, minutes to an hour later) on some orders of more than one unit, returned for
        the caller to schedule unless the order is cancelled whole anyway."""
        rng = self._changes_rng
        lines = value["lines"]
        multi = len(lines) > 1
        home = value["delivery"]["mode"] == "home"
        if multi and home and rng.random() < self.ship_complete_share:
            value["delivery"]["split"] = "ship_complete"
        if sum(ln["qty"] for ln in lines) > 1 and rng.random() < self.partial_cancel_rate:
            line = lines[rng.randrange(len(lines))]
            delay = min(3600.0, max(30.0, rng.lognormvariate(math.log(600.0), 0.9)))
            tc = t + delay
            return (
                tc,
                TOPICS.web_orders,
                order_id,
                {
                    "event_id": str(uuid.uuid5(self._ids, f"partial-cancel:{order_id}")),
                    "occurred_at": iso(tc),
                    "type": "order_cancelled",
                    "order_id": order_id,
                    "channel": channel,
                    "lines": [{"sku": line["sku"], "qty": 1 if multi else line["qty"] - 1}],
                },
            )
        return None

    def _preorders(self, t: float, value: dict[str, Any]) -> None:
        """Some orders ask their lines whose SKU has supply announced and not yet due as
        preorders (on their own random stream: the other events are unchanged)."""
        if self.preorder_channels is not None and value["channel"] not in self.preorder_channels:
            return
        asked: list[tuple[dict[str, Any], list[float]]] = []
        for ln in value["lines"]:
            lots = self._supply.get(ln["sku"])
            if not lots:
                continue
            lots[:] = [lot for lot in lots if lot[1] > t]  # due: the receipt is there or late
            lot = next((lot for lot in lots if lot[0] <= t and lot[2] >= ln["qty"]), None)
            if lot is not None:
                asked.append((ln, lot))
        if not asked or self._preorder_rng.random() >= self.preorder_share:
            return
        for ln, lot in asked:
            if lot[2] >= ln["qty"]:
                ln["preorder"] = True
                lot[2] -= ln["qty"]

    def _announced(self, loc: str, units: dict[str, int], ts: float, tag: str) -> bool:
        """Some warehouse receipts come announced: an expected_receipt now, the receipt
        asn_lead_h later (a few of them short). True when the receipt was scheduled so."""
        rng = self._changes_rng
        if rng.random() >= self.asn_share:
            return False
        due = ts + self.asn_lead_h * 3600.0
        for value in _receipts(loc, units, ts, self._receipt_ids, f"asn-{tag}"):
            value["type"] = "expected_receipt"
            value["expected_date"] = iso(due)
            self._push(ts, TOPICS.supplier_feeds, loc, value)
        for sku, q in units.items():
            lots = [lot for lot in self._supply.get(sku, []) if lot[1] > ts]  # bounded
            self._supply[sku] = [*lots, [ts, due, float(q)]]
        short = rng.random() < self.asn_short_share
        got = {s: max(1, q * 4 // 5) if short else q for s, q in units.items()}
        for value in _receipts(loc, got, due, self._receipt_ids, tag):
            self._push(due, TOPICS.supplier_feeds, loc, value)
        return True

    def _replenish(self, b0: float, lt: datetime) -> None:
        """Receipts replacing consumed units: stores daily before opening, hubs every few hours."""
        if lt.minute != 0:
            return
        rng = self._rng
        due: list[str] = []
        if lt.hour == self.store_replenish_hour:
            due += [s.location_id for s in self.stores]
        if lt.hour == (self.store_replenish_hour + 22) % 24:  # suppliers restate overnight
            due += [o.location_id for o in self.others]
        every = self.warehouse_replenish_every_h
        for k, w in enumerate(self.warehouses):
            if lt.hour % every == k % every:
                due.append(w.location_id)
        for loc in due:
            units = self.consumed.pop(loc, None)
            if not units:
                continue
            self._receipt_rounds += 1
            ts = max(b0 + rng.uniform(0.0, 55.0), self._start_ts)
            is_hub = any(w.location_id == loc for w in self.warehouses)
            if is_hub and self._announced(loc, dict(units), ts, f"r{self._receipt_rounds}"):
                continue
            for value in _receipts(
                loc, dict(units), ts, self._receipt_ids, f"r{self._receipt_rounds}"
            ):
                self._push(ts, TOPICS.supplier_feeds, loc, value)
