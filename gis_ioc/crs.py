"""The coordinate reference systems gis_ioc publishes and accepts, with VN-2000 pinned.

VN-2000 → WGS 84 always uses the official transformation EPSG:6960 (Decision 05/2007/QĐ-BTNMT),
never PROJ's automatic choice: in pyproj it is picked from the TransformerGroup by name, and in
PostGIS each VN-2000 CRS has a gis_ioc SRID (980000 + EPSG code, in the user range) whose PROJ string carries the
EPSG:6960 parameters in ``+towgs84`` form (position-vector convention: the three rotations of the
coordinate-frame parameters flip sign). The widely copied string with the rotation signs of the
other convention is about 0.75 m off in Hưng Yên.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from pyproj import CRS, Transformer
from pyproj.transformer import TransformerGroup

from gis_ioc.errors import InvalidInput

#: EPSG:6960 as +towgs84 (position vector): translations (m), rotations (arc-seconds), scale (ppm).
TOWGS84_6960 = "-191.90441429,-39.30318279,-111.45032835,0.00928836,-0.01975479,0.00427372,0.252906278"
#: The name pyproj gives the official operation.
OFFICIAL_OPERATION = "VN-2000 to WGS 84 (2)"

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@dataclass(frozen=True)
class PublishedCrs:
    uri: str
    epsg: int | None  # None for CRS84
    srid: int  # the SRID PostGIS transforms with (pinned for VN-2000)
    name: str
    lat_first: bool  # axis order of the CRS: EPSG:4326 is latitude, longitude
    proj4: str | None = None  # for the pinned SRIDs

    @property
    def vn2000(self) -> bool:
        return self.proj4 is not None


def _tm3(lon_0: float) -> str:
    return (
        f"+proj=tmerc +lat_0=0 +lon_0={lon_0} +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 "
        f"+towgs84={TOWGS84_6960} +units=m +no_defs"
    )


def _uri(epsg: int) -> str:
    return f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"


#: Every CRS a collection is offered in (Part 2), storage first.
PUBLISHED: tuple[PublishedCrs, ...] = (
    PublishedCrs(CRS84_URI, None, 4326, "WGS 84 (lon, lat)", lat_first=False),
    PublishedCrs(_uri(4326), 4326, 4326, "WGS 84 (lat, lon)", lat_first=True),
    PublishedCrs(_uri(3857), 3857, 3857, "WGS 84 / Pseudo-Mercator", lat_first=False),
    PublishedCrs(_uri(9209), 9209, 989209, "VN-2000 / TM-3 105-30", lat_first=False, proj4=_tm3(105.5)),
    PublishedCrs(
        _uri(3405),
        3405,
        983405,
        "VN-2000 / UTM zone 48N",
        lat_first=False,
        proj4=f"+proj=utm +zone=48 +ellps=WGS84 +towgs84={TOWGS84_6960} +units=m +no_defs",
    ),
)
#: VN-2000 CRSs accepted as input besides the published ones (loaders, selectors).
EXTRA_VN2000: tuple[PublishedCrs, ...] = (
    PublishedCrs(
        _uri(4756),
        4756,
        984756,
        "VN-2000 (lat, lon)",
        lat_first=True,
        proj4=f"+proj=longlat +ellps=WGS84 +towgs84={TOWGS84_6960} +no_defs",
    ),
    PublishedCrs(_uri(5897), 5897, 985897, "VN-2000 / TM-3 105-00", lat_first=False, proj4=_tm3(105.0)),
    PublishedCrs(_uri(5899), 5899, 985899, "VN-2000 / TM-3 107-45", lat_first=False, proj4=_tm3(107.75)),
    PublishedCrs(_uri(5896), 5896, 985896, "VN-2000 / TM-3 102-00", lat_first=False, proj4=_tm3(102.0)),
    PublishedCrs(_uri(5898), 5898, 985898, "VN-2000 / TM-3 108-00", lat_first=False, proj4=_tm3(108.0)),
)
ALL: tuple[PublishedCrs, ...] = PUBLISHED + EXTRA_VN2000
PUBLISHED_URIS: tuple[str, ...] = tuple(c.uri for c in PUBLISHED)


def lookup(value: str, *, published_only: bool = True) -> PublishedCrs:
    """A CRS by URI, ``EPSG:n``, ``[EPSG:n]`` (safe CURIE) or ``CRS84``; 400 when not offered."""
    text = value.strip().strip("[]")
    match = re.fullmatch(r"(?:EPSG:|https?://www\.opengis\.net/def/crs/EPSG/0/)(\d+)", text, flags=re.IGNORECASE)
    pool = PUBLISHED if published_only else ALL
    for crs in pool:
        if text in (crs.uri, crs.uri.replace("http://", "https://")):
            return crs
        if match and crs.epsg == int(match[1]):
            return crs
        if crs.epsg is None and text.upper() in ("CRS84", "OGC:CRS84"):
            return crs
    offered = ", ".join(c.uri for c in pool)
    raise InvalidInput(f"CRS {value!r} is not offered; use one of: {offered}")


@cache
def transformer(source_epsg: int, target_epsg: int) -> Transformer:
    """A pyproj transformer (x=lon/easting first) with VN-2000 ↔ WGS 84 pinned to EPSG:6960."""
    group = TransformerGroup(f"EPSG:{source_epsg}", f"EPSG:{target_epsg}", always_xy=True)
    datums = [getattr(CRS.from_epsg(e).datum, "name", None) == "Vietnam 2000" for e in (source_epsg, target_epsg)]
    candidates = group.transformers
    if datums[0] != datums[1]:  # a datum shift between VN-2000 and WGS 84: only the official one
        candidates = [t for t in group.transformers if OFFICIAL_OPERATION in t.description]
        if not candidates:
            raise RuntimeError(f"PROJ offers no {OFFICIAL_OPERATION} for EPSG:{source_epsg} → EPSG:{target_epsg}")
    return candidates[0]
