"""Offline postcode geocoding (domain/postcode.py): a French postcode to its département's
centroid, the table's coverage, and the reasons a postcode is refused."""

from __future__ import annotations

import re

import pytest

from domain.geo import great_circle_km
from domain.postcode import departement_code, departements, geocode
from sim.network import CITIES
from tooling.departement_centroids import centroid


@pytest.mark.parametrize(
    ("postcode", "code"),
    [
        ("75001", "75"),
        ("01000", "01"),
        ("69003", "69"),
        ("95000", "95"),
        ("20000", "2A"),  # Ajaccio
        ("20090", "2A"),
        ("20199", "2A"),
        ("20200", "2B"),  # Bastia
        ("20600", "2B"),
        ("97110", "971"),  # Guadeloupe
        ("97200", "972"),
        ("97300", "973"),
        ("97400", "974"),
        ("97600", "976"),  # Mayotte
    ],
)
def test_a_postcode_belongs_to_its_departement(postcode: str, code: str) -> None:
    assert departement_code(postcode) == code
    assert geocode(postcode).departement == code


def test_the_table_covers_every_departement_once() -> None:
    codes = set(departements())
    mainland = {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B"}
    assert codes == mainland | {"971", "972", "973", "974", "976"}
    for place in departements().values():
        assert place.name and 0 < place.radius_km < 300


@pytest.mark.parametrize(
    ("place", "postcode", "lat", "lon"),
    [
        ("Paris", "75004", 48.8566, 2.3522),
        ("Ajaccio", "20000", 41.9192, 8.7386),
        ("Bastia", "20200", 42.6973, 9.4509),
        ("Pointe-a-Pitre", "97110", 16.2411, -61.5331),
        ("Saint-Denis (La Reunion)", "97400", -20.8823, 55.4504),
        ("Cayenne", "97300", 4.9224, -52.3135),
    ],
)
def test_the_point_is_within_the_departements_extent_of_a_real_place(
    place: str, postcode: str, lat: float, lon: float
) -> None:
    p = geocode(postcode)
    assert great_circle_km(p.lat, p.lon, lat, lon) <= p.radius_km, place


def test_every_simulated_city_is_within_its_departements_extent() -> None:
    # sim/workload.py makes postcodes `dept + 3 digits` from these cities: the point a postcode
    # gives is in reach of the city the simulator meant (a swapped or shifted row fails here)
    for city in CITIES:
        p = geocode(f"{city.dept}123")
        km = great_circle_km(p.lat, p.lon, city.lat, city.lon)
        assert km <= p.radius_km, (city.name, km, p)


def test_paris_is_placed_within_ten_kilometres() -> None:
    p = geocode("75011")
    assert p.radius_km == 10
    assert great_circle_km(p.lat, p.lon, 48.8566, 2.3522) < 2


def test_surrounding_blanks_are_ignored() -> None:
    assert geocode(" 75001 ") == geocode("75001")


@pytest.mark.parametrize(
    ("postcode", "reason"),
    [
        ("7500", "'7500' is not a French postcode (five digits)"),
        ("750011", "is not a French postcode"),
        ("75 001", "is not a French postcode"),
        ("SW1A 1AA", "is not a French postcode"),
        ("", "is not a French postcode"),
        ("７５００１", "is not a French postcode"),  # full-width digits are not ASCII digits
        ("00100", "no département 00"),
        ("96000", "no département 96"),
        ("99999", "no département 99"),
        ("97500", "no département 975"),  # Saint-Pierre-et-Miquelon: no outline in the source
        ("98000", "no département 980"),  # Monaco
    ],
)
def test_a_malformed_or_unknown_postcode_is_refused_with_the_reason(
    postcode: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        geocode(postcode)


def test_the_table_generator_weighs_areas_and_subtracts_holes() -> None:
    # near the equator (cos ~ 1): a 2x2 square centred on (1, 1), whatever its winding
    square = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 0.0]]
    lat, lon, radius = centroid([[square]])
    assert (round(lat, 6), round(lon, 6)) == (1.0, 1.0)
    assert centroid([[square[::-1]]])[:2] == (lat, lon)
    assert radius == pytest.approx(great_circle_km(1, 1, 0, 0), rel=1e-9)
    # a hole in the right half moves the centroid left; an island far away pulls it by its area
    hole = [[1.0, 0.5], [1.5, 0.5], [1.5, 1.5], [1.0, 1.5], [1.0, 0.5]]
    assert centroid([[square, hole]])[1] < 1.0
    island = [[10.0, 0.0], [10.2, 0.0], [10.2, 0.2], [10.0, 0.2], [10.0, 0.0]]
    lon_with_island = centroid([[square], [island]])[1]
    assert lon_with_island == pytest.approx((4 * 1.0 + 0.04 * 10.1) / 4.04, abs=1e-3)
