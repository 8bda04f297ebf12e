"""A plausible retail network over mainland France, generated from a seed.

Why France: real city coordinates give the routing policy real distances to trade off (Lille to
Marseille is ~830 km, Paris is dense), and a single time zone keeps opening hours simple. Stores
are spread over cities in proportion to a damped population weight (big cities get several
stores, but not all of them), warehouses sit on the real logistics hubs, suppliers are drop-ship
partners. Capacities follow ../shared/domain-notes.md: a store ships 8-45 orders an hour with a
few hours of backlog, a warehouse hundreds.

Every location but the first warehouse and the marketplaces has a calendar (Europe/Paris):
stores open Monday to Saturday (a few tourist-zone stores on Sunday too) and prepare web orders
from half an hour after opening to an hour before closing; the other warehouses run two shifts,
06:00-22:00 Monday to Saturday; the first warehouse runs around the clock (no calendar); the
drop-ship suppliers work office hours. Stores and suppliers close on the main public holidays.

Pure: no Kafka, no clock. The same seed gives the same network, byte for byte.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from streams.records import Location, LocationCalendar

__all__ = [
    "CITIES",
    "HOURS_CHOICES",
    "NETWORK_TZ",
    "City",
    "generate_network",
    "haversine_km",
    "nearest",
    "read_network_file",
    "write_network_file",
]


@dataclass(frozen=True, slots=True)
class City:
    name: str
    lat: float
    lon: float
    population_k: int
    """Metropolitan population in thousands: drives both store count and customer demand."""
    dept: str
    """Département code, the first two digits of a French postcode."""


CITIES: tuple[City, ...] = (
    City("Paris", 48.8566, 2.3522, 10800, "75"),
    City("Lyon", 45.7640, 4.8357, 2300, "69"),
    City("Marseille", 43.2965, 5.3698, 1870, "13"),
    City("Lille", 50.6292, 3.0573, 1500, "59"),
    City("Toulouse", 43.6047, 1.4442, 1450, "31"),
    City("Bordeaux", 44.8378, -0.5792, 1360, "33"),
    City("Nice", 43.7102, 7.2620, 1000, "06"),
    City("Nantes", 47.2184, -1.5536, 1000, "44"),
    City("Strasbourg", 48.5734, 7.7521, 850, "67"),
    City("Montpellier", 43.6108, 3.8767, 800, "34"),
    City("Rennes", 48.1173, -1.6778, 760, "35"),
    City("Grenoble", 45.1885, 5.7245, 700, "38"),
    City("Rouen", 49.4432, 1.0999, 670, "76"),
    City("Toulon", 43.1242, 5.9280, 630, "83"),
    City("Avignon", 43.9493, 4.8055, 530, "84"),
    City("Saint-Etienne", 45.4397, 4.3872, 520, "42"),
    City("Nancy", 48.6921, 6.1844, 510, "54"),
    City("Clermont-Ferrand", 45.7772, 3.0870, 500, "63"),
    City("Tours", 47.3941, 0.6848, 500, "37"),
    City("Orleans", 47.9030, 1.9093, 450, "45"),
    City("Angers", 47.4784, -0.5632, 430, "49"),
    City("Caen", 49.1829, -0.3707, 420, "14"),
    City("Metz", 49.1193, 6.1757, 400, "57"),
    City("Dijon", 47.3220, 5.0415, 390, "21"),
    City("Le Mans", 48.0061, 0.1996, 350, "72"),
    City("Reims", 49.2583, 4.0317, 330, "51"),
    City("Le Havre", 49.4944, 0.1079, 330, "76"),
    City("Brest", 48.3904, -4.4861, 320, "29"),
    City("Perpignan", 42.6887, 2.8948, 320, "66"),
    City("Bayonne", 43.4929, -1.4748, 310, "64"),
    City("Amiens", 49.8941, 2.2958, 290, "80"),
    City("Annecy", 45.8992, 6.1294, 290, "74"),
    City("Limoges", 45.8336, 1.2611, 280, "87"),
    City("Besancon", 47.2378, 6.0241, 280, "25"),
    City("Mulhouse", 47.7508, 7.3359, 280, "68"),
    City("Poitiers", 46.5802, 0.3404, 260, "86"),
    City("Pau", 43.2951, -0.3708, 240, "64"),
    City("La Rochelle", 46.1603, -1.1511, 210, "17"),
)

# Real distribution hubs (the A1/A7/A10 logistics corridors); the first three are the default
# "central" network: north, centre, south-east.
_HUBS: tuple[tuple[str, float, float], ...] = (
    ("Orleans-Saran", 47.9506, 1.8760),
    ("Lyon-Saint-Quentin-Fallavier", 45.6431, 5.1130),
    ("Lille-Lauwin-Planque", 50.3906, 3.0458),
    ("Paris-Sud-Reau", 48.6066, 2.6230),
    ("Bordeaux-Cestas", 44.7430, -0.6810),
    ("Marseille-Miramas", 43.5820, 5.0020),
    ("Nantes-Carquefou", 47.2970, -1.4920),
    ("Toulouse-Eurocentre", 43.7630, 1.3470),
    ("Strasbourg-Hoerdt", 48.6950, 7.7800),
)
_SUPPLIERS: tuple[tuple[str, float, float], ...] = (
    ("Roubaix Textiles", 50.6942, 3.1746),
    ("Cholet Manufacture", 47.0600, -0.8790),
    ("Troyes Maille", 48.2973, 4.0744),
    ("Valence Distribution", 44.9334, 4.8924),
    ("Limoges Porcelaine", 45.8500, 1.2500),
    ("Oyonnax Plastiques", 46.2560, 5.6550),
)
_MARKETPLACES: tuple[tuple[str, float, float], ...] = (
    ("Marketplace Partner Ile-de-France", 48.9560, 2.5430),
    ("Marketplace Partner Rhone", 45.7280, 4.9510),
    ("Marketplace Partner Nord", 50.5480, 3.0370),
)
NETWORK_TZ = "Europe/Paris"
HOURS_CHOICES: tuple[tuple[tuple[int, int], float], ...] = (
    ((9 * 60, 20 * 60), 0.5),
    ((9 * 60 + 30, 19 * 60 + 30), 0.2),
    ((10 * 60, 19 * 60), 0.2),
    ((8 * 60 + 30, 21 * 60), 0.1),
)
"""Store opening hours (minutes since local midnight, Monday to Saturday) and their shares."""
SUNDAY_SHARE = 0.15
"""Tourist-zone stores trading on Sunday, 10:00-18:00 (no web-order preparation then)."""
SUNDAY_HOURS = (10 * 60, 18 * 60)
_MON_SAT = ("mon", "tue", "wed", "thu", "fri", "sat")
_HOLIDAYS = tuple(
    f"{y}-{md}" for y in range(2025, 2031) for md in ("01-01", "05-01", "12-25")
)  # fmt: skip


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _span(a: int, b: int) -> str:
    return f"{_hhmm(a)}-{_hhmm(b)}"


def store_hours(rng: random.Random) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """(opening Monday to Saturday, Sunday opening or None), drawn from HOURS_CHOICES: two
    draws per store, so the simulator's till traffic can redraw the same hours from the seed."""
    r = rng.random() * sum(w for _, w in HOURS_CHOICES)
    week = HOURS_CHOICES[-1][0]
    for hours, w in HOURS_CHOICES:
        if r < w:
            week = hours
            break
        r -= w
    sunday = SUNDAY_HOURS if rng.random() < SUNDAY_SHARE else None
    return week, sunday


def store_calendar(week: tuple[int, int], sunday: tuple[int, int] | None) -> LocationCalendar:
    """Open `week` Monday to Saturday (and `sunday`), preparing web orders from 30 min after
    opening to 60 min before closing, Monday to Saturday; closed on the main holidays."""
    opening = {d: [_span(*week)] for d in _MON_SAT}
    if sunday is not None:
        opening["sun"] = [_span(*sunday)]
    prep = _span(week[0] + 30, week[1] - 60)
    return LocationCalendar.model_validate(
        {
            "tz": NETWORK_TZ,
            "opening": opening,
            "preparation": {d: [prep] for d in _MON_SAT},
            "closed_dates": list(_HOLIDAYS),
        }
    )


def _shifts_calendar(shifts: list[str], days: tuple[str, ...], closed: bool) -> LocationCalendar:
    return LocationCalendar.model_validate(
        {
            "tz": NETWORK_TZ,
            "opening": {d: shifts for d in days},
            "closed_dates": list(_HOLIDAYS) if closed else [],
        }
    )


WAREHOUSE_SHIFTS = _shifts_calendar(["06:00-14:00", "14:00-22:00"], _MON_SAT, closed=False)
"""Two shifts, Monday to Saturday (every warehouse but the first, which never stops)."""
SUPPLIER_HOURS = _shifts_calendar(["08:00-12:00", "13:00-18:00"], _MON_SAT[:5], closed=True)
_STORE_AREAS = ("Centre", "Nord", "Sud", "Est", "Ouest", "Gare", "Rive Gauche", "Rive Droite")


def _pad(n: int, width: int) -> int:
    return max(width, len(str(n)))


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of `total` over weights: deterministic and sums exactly."""
    s = sum(weights)
    quotas = [total * w / s for w in weights]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - quotas[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _jitter(rng: random.Random, lat: float, lon: float, km: float) -> tuple[float, float]:
    """Gaussian offset of about `km` around a point, longitude scaled by latitude."""
    dlat = rng.gauss(0.0, km / 111.0)
    dlon = rng.gauss(0.0, km / (111.0 * math.cos(math.radians(lat))))
    return round(lat + dlat, 5), round(lon + dlon, 5)


def generate_network(
    seed: int,
    warehouses: int = 3,
    stores: int = 60,
    suppliers: int = 2,
    marketplaces: int = 0,
) -> list[Location]:
    """The locations of a retailer: warehouses, then stores, suppliers and marketplaces.

    Ids are stable for a size ("WH-01", "ST-001", "SUP-01", "MP-01"), so a planner's notes and
    a benchmark's baseline keep meaning the same place across runs with the same seed.
    """
    if min(warehouses, stores, suppliers, marketplaces) < 0:
        raise ValueError("location counts must be >= 0")
    rng = random.Random(f"stockroute-network:{seed}")
    out: list[Location] = []

    w = _pad(warehouses, 2)
    for i in range(warehouses):
        name, lat, lon = _HUBS[i % len(_HUBS)]
        if i >= len(_HUBS):
            lat, lon = _jitter(rng, lat, lon, 15.0)
            name = f"{name} {i // len(_HUBS) + 1}"
        cap = rng.randrange(300, 601, 10)
        out.append(
            Location(
                location_id=f"WH-{i + 1:0{w}d}",
                kind="warehouse",
                name=f"Warehouse {name}",
                lat=lat,
                lon=lon,
                ship_from_store=False,
                click_collect=False,
                capacity_per_hour=cap,
                # Warehouses run two shifts: a day of orders may wait before the carrier cut-off.
                max_backlog=cap * rng.randint(8, 16),
                safety_stock=0,
                active=True,
                calendar=None if i == 0 else WAREHOUSE_SHIFTS,
            )
        )

    # Damped population weight: Paris gets more stores than Lyon, not five times more.
    hours_rng = random.Random(f"stockroute-hours:{seed}")  # its own stream: same network
    per_city = _allocate(stores, [c.population_k**0.6 for c in CITIES])
    w = _pad(stores, 3)
    n = 0
    for city, count in zip(CITIES, per_city, strict=True):
        spread_km = 4.0 + 8.0 * min(1.0, city.population_k / 2000.0)
        for k in range(count):
            n += 1
            lat, lon = _jitter(rng, city.lat, city.lon, spread_km)
            area = _STORE_AREAS[k % len(_STORE_AREAS)]
            suffix = area if k < len(_STORE_AREAS) else f"{area} {k // len(_STORE_AREAS) + 1}"
            # Big-city stores dedicate more associates to online orders (domain notes: 2-3
            # associates handle 25-45 orders an hour).
            big = city.population_k >= 1000
            cap = rng.randint(15, 45) if big else rng.randint(8, 30)
            out.append(
                Location(
                    location_id=f"ST-{n:0{w}d}",
                    kind="store",
                    name=f"Store {city.name} {suffix}",
                    lat=lat,
                    lon=lon,
                    ship_from_store=rng.random() < 0.88,
                    click_collect=rng.random() < 0.95,
                    capacity_per_hour=cap,
                    max_backlog=cap * rng.randint(2, 4),
                    safety_stock=rng.randint(1, 3),
                    active=True,
                    calendar=store_calendar(*store_hours(hours_rng)),
                )
            )

    w = _pad(suppliers, 2)
    for i in range(suppliers):
        name, lat, lon = _SUPPLIERS[i % len(_SUPPLIERS)]
        if i >= len(_SUPPLIERS):
            lat, lon = _jitter(rng, lat, lon, 20.0)
            name = f"{name} {i // len(_SUPPLIERS) + 1}"
        cap = rng.randrange(60, 201, 10)
        out.append(
            Location(
                location_id=f"SUP-{i + 1:0{w}d}",
                kind="supplier",
                name=f"Supplier {name} (drop-ship)",
                lat=lat,
                lon=lon,
                capacity_per_hour=cap,
                max_backlog=cap * 24,
                safety_stock=0,
                active=True,
                calendar=SUPPLIER_HOURS,
            )
        )

    w = _pad(marketplaces, 2)
    for i in range(marketplaces):
        name, lat, lon = _MARKETPLACES[i % len(_MARKETPLACES)]
        if i >= len(_MARKETPLACES):
            lat, lon = _jitter(rng, lat, lon, 20.0)
            name = f"{name} {i // len(_MARKETPLACES) + 1}"
        cap = rng.randrange(100, 401, 10)
        out.append(
            Location(
                location_id=f"MP-{i + 1:0{w}d}",
                kind="marketplace",
                name=name,
                lat=lat,
                lon=lon,
                capacity_per_hour=cap,
                max_backlog=cap * 12,
                safety_stock=0,
                active=True,
            )
        )
    return out


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance; the simulator uses it to send customers to nearby stores."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12742.0 * math.asin(min(1.0, math.sqrt(a)))


def nearest(lat: float, lon: float, locations: Iterable[Location], k: int = 1) -> list[Location]:
    """The k locations closest to a point, nearest first (ties by id, for determinism)."""
    ranked = sorted(
        locations, key=lambda loc: (haversine_km(lat, lon, loc.lat, loc.lon), loc.location_id)
    )
    return ranked[:k]


def write_network_file(path: str | Path, locations: Sequence[Location]) -> Path:
    """Dump locations as JSON lines, the input of `stockroute locations load FILE`.

    A file rather than a topic so the network can be reviewed, edited by hand and loaded into
    any cluster without running the simulator.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("wb") as fh:
        for loc in locations:
            fh.write(orjson.dumps(loc.model_dump(mode="json")) + b"\n")
    return p


def read_network_file(path: str | Path) -> list[Location]:
    """Read back a file written by write_network_file (blank lines tolerated)."""
    out = []
    for line in Path(path).read_bytes().splitlines():
        if line.strip():
            out.append(Location.model_validate(orjson.loads(line)))
    return out
