"""The generated network: reproducible, plausible, loadable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from domain.calendar import calendar_of, open_at, preparing_at
from sim.network import generate_network, haversine_km, read_network_file, write_network_file
from streams.records import Location

# Mainland France, generously (Brest to Strasbourg, Dunkirk to Perpignan).
LAT = (41.0, 51.5)
LON = (-5.5, 9.8)


def test_the_same_seed_gives_the_same_network_and_another_seed_a_different_one() -> None:
    a = generate_network(7)
    assert a == generate_network(7)
    assert a != generate_network(8)


def test_default_sizes_and_ids_follow_the_documented_scheme() -> None:
    net = generate_network(1)
    kinds = [loc.kind for loc in net]
    assert kinds.count("warehouse") == 3
    assert kinds.count("store") == 60
    assert kinds.count("supplier") == 2
    assert kinds.count("marketplace") == 0
    ids = [loc.location_id for loc in net]
    assert len(set(ids)) == len(ids)
    assert ids[:3] == ["WH-01", "WH-02", "WH-03"]
    assert "ST-001" in ids and "ST-060" in ids and "SUP-02" in ids


def test_every_location_is_in_france_with_capacities_from_the_domain_notes() -> None:
    net = generate_network(3, warehouses=5, stores=120, suppliers=3, marketplaces=2)
    for loc in net:
        Location.model_validate(loc.model_dump(mode="json"))
        assert LAT[0] < loc.lat < LAT[1] and LON[0] < loc.lon < LON[1], loc
        if loc.kind == "store":
            assert 8 <= loc.capacity_per_hour <= 45
            assert 2 * loc.capacity_per_hour <= loc.max_backlog <= 4 * loc.capacity_per_hour
            assert 1 <= loc.safety_stock <= 3
        elif loc.kind == "warehouse":
            assert 300 <= loc.capacity_per_hour <= 600
            assert loc.max_backlog >= 8 * loc.capacity_per_hour
            assert not loc.ship_from_store and not loc.click_collect
        else:
            assert not loc.ship_from_store and not loc.click_collect
            assert loc.capacity_per_hour > 0


def test_most_stores_ship_and_offer_click_and_collect_but_not_all() -> None:
    stores = [loc for loc in generate_network(11, stores=200) if loc.kind == "store"]
    sfs = sum(s.ship_from_store for s in stores) / len(stores)
    cc = sum(s.click_collect for s in stores) / len(stores)
    assert 0.75 < sfs < 0.98
    assert 0.85 < cc <= 1.0


def test_stores_cluster_around_cities_with_more_in_paris() -> None:
    stores = [loc for loc in generate_network(5) if loc.kind == "store"]
    paris = [s for s in stores if haversine_km(s.lat, s.lon, 48.8566, 2.3522) < 60]
    lyon = [s for s in stores if haversine_km(s.lat, s.lon, 45.7640, 4.8357) < 40]
    assert len(paris) > len(lyon) >= 1


def test_the_network_file_round_trips_as_json_lines(tmp_path: Path) -> None:
    net = generate_network(2, stores=10)
    path = write_network_file(tmp_path / "net" / "locations.jsonl", net)
    assert len(path.read_text().splitlines()) == len(net)
    assert read_network_file(path) == net


def test_the_network_has_realistic_calendars() -> None:
    """Stores Monday to Saturday (some on Sunday), preparing inside their opening hours; the
    first warehouse around the clock (no calendar), the others two shifts; holidays closed."""
    net = generate_network(4, warehouses=3, stores=60, suppliers=2)
    by_id = {loc.location_id: loc for loc in net}
    assert by_id["WH-01"].calendar is None
    assert by_id["WH-02"].calendar is not None
    assert by_id["WH-02"].calendar.opening["mon"] == ["06:00-14:00", "14:00-22:00"]
    stores = [loc for loc in net if loc.kind == "store"]
    assert all(s.calendar is not None and s.calendar.tz == "Europe/Paris" for s in stores)
    sunday = sum(1 for s in stores if s.calendar and "sun" in s.calendar.opening)
    assert 0 < sunday < len(stores) // 2
    tuesday_noon = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    tuesday_night = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    christmas = datetime(2026, 12, 25, 11, 0, tzinfo=UTC)
    for s in stores:
        cal = calendar_of(s)
        assert preparing_at(cal, tuesday_noon) and open_at(cal, tuesday_noon)
        assert not open_at(cal, tuesday_night) and not preparing_at(cal, tuesday_night)
        assert not open_at(cal, christmas)
        # preparation sits inside the opening hours: 30 min after opening, 1 h before closing
        (opening,), (prep,) = s.calendar.opening["tue"], s.calendar.preparation["tue"]  # type: ignore[index,union-attr]
        assert opening[:5] < prep[:5] and prep[6:] < opening[6:]
    assert preparing_at(calendar_of(by_id["WH-01"]), tuesday_night)
    assert not preparing_at(calendar_of(by_id["WH-02"]), tuesday_night)
