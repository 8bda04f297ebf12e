"""The simulated carrier: when a parcel handed over at some moment reaches the customer.

The carriers of the routing policy (domain/promise.py) collect at their cut-off on pickup days:
a parcel handed over after the day's cut-off waits for the next collection, however early the
promise said it would ship. It then travels its distance band's transit days, counted in
delivery days, and with probability `delay_p` one day more (a missed connection, a failed
first attempt). bench/quality.py uses it to check the promised dates were kept.
"""

from __future__ import annotations

import random
from datetime import date, datetime

from domain.promise import Carriers, delivery_date, local_zone, next_cutoff
from streams.records import Location

DELAY_P = 0.03


def delivered_on(
    loc: Location,
    handed_over: datetime,
    km: float,
    service: str,
    carriers: Carriers,
    rng: random.Random,
    delay_p: float = DELAY_P,
) -> date:
    """The day a parcel handed to the carrier at `handed_over` is delivered."""
    svc = carriers.services.get(service) or carriers.services["standard"]
    collected = next_cutoff(svc, svc.cutoff_of(loc), local_zone(loc, carriers), handed_over)
    days = svc.transit_days(km) + (1 if rng.random() < delay_p else 0)
    return delivery_date(svc, collected.date(), days)
