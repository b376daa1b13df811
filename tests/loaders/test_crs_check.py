"""How a declared CRS is read: VN-2000 by parameters pinned to EPSG:6960, bare-WGS 84 TM-3 left alone."""

from __future__ import annotations

import numpy as np
from pyproj import CRS, Transformer

from gis_ioc.loaders.crs_check import LOCAL_TM3, source_crs
from tests.loaders.conftest import VN2000_TM3_10530

#: The string copied around the web: EPSG:6960's rotations with the signs of the other convention.
REVERSED = VN2000_TM3_10530.replace("0.00928836,-0.01975479,0.00427372", "-0.00928836,0.01975479,-0.00427372")


def test_vn2000_described_by_parameters_is_read_with_the_official_operation() -> None:
    for text in (VN2000_TM3_10530, REVERSED, "EPSG:9209"):
        notes: list[str] = []
        reading = source_crs(CRS.from_user_input(text), notes)
        assert reading.label == "EPSG:9209", text
        assert "VN-2000 to WGS 84 (2)" in reading.operation
    # the reversed string is 0.5–1 m off here; the loader does not use it
    e, n = 560_000.0, 2_290_000.0
    official = Transformer.from_crs(VN2000_TM3_10530, "EPSG:4326", always_xy=True).transform(e, n)
    reversed_ = Transformer.from_crs(REVERSED, "EPSG:4326", always_xy=True).transform(e, n)
    ours = source_crs(CRS.from_user_input(REVERSED)).to_wgs84(np.array([e]), np.array([n]))
    assert abs(ours[0][0] - official[0]) < 1e-8 and abs(ours[1][0] - official[1]) < 1e-8
    offset_m = np.hypot((official[0] - reversed_[0]) * 104_000, (official[1] - reversed_[1]) * 110_600)
    assert 0.4 < offset_m < 1.2


def test_tm3_on_bare_wgs84_is_not_taken_for_vn2000() -> None:
    reading = source_crs(CRS.from_user_input(LOCAL_TM3))
    assert reading.label != "EPSG:9209" and "6960" not in reading.operation
