"""SenML JSON (RFC 8428): a pack of records with base values resolved.

The SenML packages on PyPI were last released in 2016–2018 and resolve base values only in part, so
this is a small parser of our own. It keeps to the RFC: base name, time, unit and value (``bn``, ``bt``,
``bu``, ``bv``) carry over to the records that follow; a resolved time below 2**28 is relative to now;
a field whose name ends in ``_`` (must understand) or a ``bver`` above 10 rejects the pack. Only
numeric values (``v``) are readings here: a record with ``vs``, ``vb`` or ``vd`` is rejected alone.

Errors of the whole pack (not JSON, not an array, a field of the wrong type) raise :class:`SenMLError`;
errors of one record come back in :attr:`Pack.rejected` so that the good records of a pack are kept.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gis_ioc.errors import GisIocError
from gis_ioc.iot.model import reason

#: Resolved times below this are relative to now (RFC 8428, section 4.5.3).
RELATIVE_LIMIT = 2**28
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-:./_]*$")
_STRINGS = ("bn", "bu", "n", "u", "vs", "vd")
_NUMBERS = ("bt", "bv", "bs", "bver", "t", "v", "s", "ut")
_KNOWN = frozenset(_STRINGS + _NUMBERS + ("vb",))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SenMLError(GisIocError):
    """The payload is not a SenML JSON pack; ``reason_code`` names the problem (:data:`~gis_ioc.iot.model.REASONS`)."""

    status = 400
    title = "SenML"

    def __init__(self, reason_code: str, **values: object) -> None:
        self.reason_code = reason_code
        self.values = values
        super().__init__(
            reason(reason_code, "en", **values), code=f"iot.{reason_code}", vi=reason(reason_code, "vi", **values)
        )


@dataclass(frozen=True)
class Record:
    """One resolved record: full name, unit (or None), numeric value, time (UTC)."""

    index: int
    name: str
    unit: str | None
    value: float
    time: datetime
    raw: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A record that cannot be a reading, with the reason code and its values."""

    index: int
    code: str
    values: dict[str, object]
    raw: dict[str, Any]


@dataclass
class Pack:
    records: list[Record] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _no_constant(name: str) -> float:
    raise ValueError(name)


def loads(payload: bytes | str) -> list[dict[str, Any]]:
    """The pack's records as JSON objects (``SenMLError`` when it is no SenML JSON array)."""
    try:
        data = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SenMLError("not_json", detail=str(exc)[:120]) from exc
    if not isinstance(data, list):
        raise SenMLError("not_array")
    if not data:
        raise SenMLError("empty")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise SenMLError("not_object", index=i)
        for key, value in item.items():
            if key.endswith("_"):
                raise SenMLError("must_understand", index=i, field=key)
            if key in _STRINGS and not isinstance(value, str):
                raise SenMLError("field_type", index=i, field=key, expected="text")
            if key in _NUMBERS and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise SenMLError("field_type", index=i, field=key, expected="number")
            if key == "vb" and not isinstance(value, bool):
                raise SenMLError("field_type", index=i, field=key, expected="bool")
        if "bver" in item and item["bver"] > 10:
            raise SenMLError("version", index=i, version=item["bver"])
    return data


def parse(payload: bytes | str, now: datetime) -> Pack:
    """Resolve a SenML JSON pack received at ``now`` (aware)."""
    pack = Pack()
    bn, bt, bu, bv = "", 0.0, None, 0.0
    for i, item in enumerate(loads(payload)):
        bn = item.get("bn", bn)
        bt = float(item.get("bt", bt))
        bu = item.get("bu", bu)
        bv = float(item.get("bv", bv))
        has_value = any(k in item for k in ("v", "vs", "vb", "vd", "s"))
        if not has_value and "n" not in item and any(k in item for k in ("bn", "bt", "bu", "bv", "bver")):
            continue  # a record that only sets base fields
        unknown = sorted(set(item) - _KNOWN)
        if unknown:
            pack.rejected.append(Rejected(i, "unknown_field", {"field": ", ".join(unknown)}, item))
            continue
        name = bn + item.get("n", "")
        if not name or not _NAME.match(name):
            pack.rejected.append(Rejected(i, "bad_name", {"name": name}, item))
            continue
        if "v" not in item:
            pack.rejected.append(Rejected(i, "no_value", {}, item))
            continue
        value = bv + float(item["v"])
        if not math.isfinite(value):
            pack.rejected.append(Rejected(i, "no_value", {}, item))
            continue
        t = bt + float(item.get("t", 0.0))
        try:
            time = now + timedelta(seconds=t) if t < RELATIVE_LIMIT else _EPOCH + timedelta(seconds=t)
        except OverflowError:
            pack.rejected.append(Rejected(i, "bad_time", {"time": t}, item))
            continue
        if not math.isfinite(t) or time.year < 1970 or time.year > 9998:
            pack.rejected.append(Rejected(i, "bad_time", {"time": t}, item))
            continue
        pack.records.append(Record(i, name, item.get("u", bu), value, time, item))
    return pack


def dumps(device_code: str, readings: list[tuple[str, float, datetime]], unit: dict[str, str] | None = None) -> bytes:
    """A SenML pack of ``(property, value, time)`` readings of one device (base name ``<device>:``)."""
    out: list[dict[str, Any]] = []
    base = readings[0][2].timestamp() if readings else 0.0
    for i, (prop, value, time) in enumerate(readings):
        record: dict[str, Any] = {"n": prop, "v": value, "t": round(time.timestamp() - base, 3)}
        if i == 0:
            record.update(bn=f"{device_code}:", bt=base)
        if unit and prop in unit:
            record["u"] = unit[prop]
        out.append(record)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()
