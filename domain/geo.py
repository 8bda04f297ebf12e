"""Great-circle distance between two points on Earth (haversine, spherical Earth).

The routing policy uses it as a proxy for shipping cost: parcel carriers price by zone and weight,
and the straight-line distance is a good, dependency-free stand-in for ranking locations. The
error of the spherical model (< 0.5 %) is far below what matters for routing.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

_RAD = math.pi / 180.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in kilometres along the Earth's surface between two (lat, lon) points in degrees.

    Haversine formula: numerically stable for small distances, symmetric, 0 for equal points.
    """
    phi1 = lat1 * _RAD
    phi2 = lat2 * _RAD
    dphi = phi2 - phi1
    dlmb = (lon2 - lon1) * _RAD
    s_phi = math.sin(dphi * 0.5)
    s_lmb = math.sin(dlmb * 0.5)
    h = s_phi * s_phi + math.cos(phi1) * math.cos(phi2) * s_lmb * s_lmb
    # Rounding can push h a hair outside [0, 1] for antipodal points.
    h = min(1.0, max(0.0, h))
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
