"""VN_AQI of Quyết định 1459/QĐ-TCMT (2019): hourly AQI (NowCast for dust), daily AQI, bands.

The breakpoints, levels and bands are data (``config/iot/vn_aqi.yaml``); this module only applies the
decision's formulas:

* AQI of one parameter: linear between the breakpoints around the concentration,
  ``AQI = (I_{i+1} - I_i) / (BP_{i+1} - BP_i) × (C - BP_i) + I_i``, rounded half up to a whole number;
  a concentration beyond the last breakpoint is 500.
* Hourly AQI of PM2.5 and PM10 from the NowCast of the last 12 hours (:func:`nowcast`), of O3, NO2, SO2
  and CO from the hour's mean; the station's hourly AQI is the largest, and needs PM2.5 or PM10.
* Daily AQI of PM2.5 and PM10 from the 24-hour mean, of NO2, SO2 and CO from the day's largest hourly
  mean, of O3 from the larger of its largest 1-hour and 8-hour means' AQI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from gis_ioc.errors import ConfigError

DUST = ("pm25", "pm10")
GASES = ("o3", "no2", "so2", "co")
PARAMETERS = DUST + GASES


@dataclass(frozen=True)
class Band:
    upper: int
    code: str
    vi: str
    en: str
    colour: str

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


@dataclass(frozen=True)
class AqiTable:
    levels: tuple[int, ...]
    breakpoints: Mapping[str, tuple[float, ...]]
    bands: tuple[Band, ...]
    alert_from: str

    def band(self, aqi: int) -> Band:
        """The band an AQI falls in (0–50 Tốt … 301–500 Nguy hại)."""
        for b in self.bands:
            if aqi <= b.upper:
                return b
        return self.bands[-1]

    def alerting(self, aqi: int) -> bool:
        """True from the alerting band (Kém) upwards."""
        codes = [b.code for b in self.bands]
        return codes.index(self.band(aqi).code) >= codes.index(self.alert_from)

    def index(self, table: str, concentration: float) -> int:
        """The AQI of one concentration against one breakpoint row (``pm25``, ``o3_1h``, …)."""
        points = self.breakpoints[table]
        if concentration < 0:
            raise ValueError(f"a concentration cannot be negative: {concentration}")
        for i in range(len(points) - 1):
            low, high = points[i], points[i + 1]
            if concentration <= high:
                low_i, high_i = self.levels[i], self.levels[i + 1]
                return round_half_up((high_i - low_i) / (high - low) * (concentration - low) + low_i)
        return self.levels[-1] if len(points) == len(self.levels) else -1


def round_half_up(value: float) -> int:
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@lru_cache(maxsize=4)
def load_table(config_dir: Path) -> AqiTable:
    """Read ``config_dir/iot/vn_aqi.yaml`` (checked; cached per folder)."""
    path = config_dir / "iot" / "vn_aqi.yaml"
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        levels = tuple(int(x) for x in raw["levels"])
        points = {k: tuple(float(x) for x in v) for k, v in raw["breakpoints"].items()}
        bands = tuple(Band(int(b["max"]), b["code"], b["vi"], b["en"], b["colour"]) for b in raw["bands"])
        alert_from = str(raw["alert_from"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the VN_AQI table: {exc}") from exc
    for name, row in points.items():
        if list(row) != sorted(row) or len(row) > len(levels):
            raise ConfigError(f"{path}: breakpoints of {name} must rise and number at most {len(levels)}")
    if alert_from not in {b.code for b in bands}:
        raise ConfigError(f"{path}: alert_from {alert_from!r} is not a band")
    missing = {"pm25", "pm10", "o3_1h", "o3_8h", "no2", "so2", "co"} - set(points)
    if missing:
        raise ConfigError(f"{path}: breakpoints missing for {sorted(missing)}")
    return AqiTable(levels, points, bands, alert_from)


def nowcast(hours: Sequence[float | None]) -> float | None:
    """NowCast of PM2.5/PM10 from hourly means, ``hours[0]`` the latest hour (c1), up to 12 hours.

    The decision: at least two of c1, c2, c3 must be present (else no value); ``w* = Cmin / Cmax`` over
    the 12 hours; ``w = 1/2`` when ``w* ≤ 1/2``, else ``w = w*``; then for ``w > 1/2``
    ``Σ w^(i-1) c_i / Σ w^(i-1)`` and for ``w = 1/2`` ``Σ (1/2)^i c_i`` (i = 1 … 12), a missing hour
    leaving out its term.
    """
    c = list(hours[:12])
    if sum(1 for x in c[:3] if x is not None) < 2:
        return None
    present = [(i, x) for i, x in enumerate(c, start=1) if x is not None]
    values = [x for _, x in present]
    high = max(values)
    if high <= 0:
        return 0.0
    w_star = min(values) / high
    if w_star <= 0.5:
        return sum(0.5**i * x for i, x in present)
    return sum(w_star ** (i - 1) * x for i, x in present) / sum(w_star ** (i - 1) for i, _ in present)


@dataclass(frozen=True)
class Aqi:
    value: int
    dominant: str  # the parameter giving the value
    by_parameter: dict[str, int]


def _combine(by: dict[str, int]) -> Aqi | None:
    if not any(p in by for p in DUST):  # the decision requires PM2.5 or PM10
        return None
    dominant = max(by, key=lambda p: (by[p], p in DUST))
    return Aqi(by[dominant], dominant, by)


def hourly_aqi(
    table: AqiTable, dust_hours: Mapping[str, Sequence[float | None]], gases: Mapping[str, float]
) -> Aqi | None:
    """The station's hourly AQI: NowCast of the dust's last 12 hourly means (latest first), and the
    gases' means of the hour (µg/m³). None when neither PM2.5 nor PM10 has a NowCast."""
    by: dict[str, int] = {}
    for p in DUST:
        if p in dust_hours and (value := nowcast(dust_hours[p])) is not None:
            by[p] = table.index(p, value)
    for p, value in gases.items():
        if p not in GASES:
            raise ValueError(f"not a VN_AQI gas: {p}")
        by[p] = table.index("o3_1h" if p == "o3" else p, value)
    return _combine(by)


def daily_aqi(
    table: AqiTable,
    means_24h: Mapping[str, float],
    max_1h: Mapping[str, float],
    o3_max_8h: float | None = None,
) -> Aqi | None:
    """The day's AQI: dust from its 24-hour means, NO2/SO2/CO from their largest hourly mean of the day,
    O3 from the larger AQI of its largest 1-hour mean and largest 8-hour mean (an 8-hour mean above
    400 µg/m³ is not used: then the 1-hour mean alone, or no O3 AQI without one)."""
    by: dict[str, int] = {}
    for p in DUST:
        if p in means_24h:
            by[p] = table.index(p, means_24h[p])
    for p, value in max_1h.items():
        if p not in GASES:
            raise ValueError(f"not a VN_AQI gas: {p}")
        by[p] = table.index("o3_1h" if p == "o3" else p, value)
    # -1 above the 8-hour row (400 µg/m³): the decision then takes the 1-hour value alone
    if o3_max_8h is not None and (eight := table.index("o3_8h", o3_max_8h)) >= 0:
        by["o3"] = max(by.get("o3", eight), eight)
    return _combine(by)
