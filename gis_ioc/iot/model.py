"""The sensor model (SensorThings-shaped): observed properties with units and physical ranges, datastreams
(device × property, expected interval) and the devices' credentials; the reason texts of refused readings.

A device is a feature of the ``iot_devices`` layer (its ``device_code``), approved. Its secret serves both
MQTT (the broker's password file is written from the stored hashes) and HTTP push (Basic), and is kept
only as a PBKDF2-SHA512 hash in mosquitto's own format, ``$7$iterations$salt$hash``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from gis_ioc.errors import GisIocError, InvalidInput, NotFound

#: Topic of a device's SenML packs: ``hy/iot/<device_code>``.
TOPIC_PREFIX = "hy/iot"
#: PBKDF2 rounds of a device secret's hash (mosquitto checks it at each connection).
HASH_ITERATIONS = 10_000
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

#: Units a reading may carry for a property's unit: the unit itself and its SenML/ASCII spellings.
UNIT_ALIASES: dict[str, frozenset[str]] = {
    "µg/m³": frozenset({"µg/m³", "ug/m3", "µg/m3", "ug/m^3"}),
    "m": frozenset({"m"}),
    "mm": frozenset({"mm"}),
    "°C": frozenset({"°C", "Cel", "degC"}),
    "%": frozenset({"%", "%RH", "/"}),
}

#: Why a reading or a pack was refused: code → (Vietnamese, English) with ``str.format`` fields.
REASONS: dict[str, tuple[str, str]] = {
    "not_json": ("gói tin không phải JSON hợp lệ ({detail})", "the payload is not valid JSON ({detail})"),
    "not_array": ("gói SenML phải là một mảng JSON các bản ghi", "a SenML pack must be a JSON array of records"),
    "empty": ("gói SenML không có bản ghi nào", "the SenML pack has no records"),
    "not_object": ("bản ghi {index} không phải đối tượng JSON", "record {index} is not a JSON object"),
    "must_understand": (
        "bản ghi {index}: trường bắt buộc hiểu '{field}' không được hỗ trợ",
        "record {index}: must-understand field '{field}' is not supported",
    ),
    "field_type": (
        "bản ghi {index}: trường '{field}' phải là {expected}",
        "record {index}: '{field}' must be {expected}",
    ),
    "version": (
        "bản ghi {index}: phiên bản SenML {version} không được hỗ trợ (tối đa 10)",
        "record {index}: SenML version {version} is not supported (at most 10)",
    ),
    "too_large": (
        "gói tin quá lớn ({size} byte, tối đa {limit})",
        "the payload is too large ({size} bytes, at most {limit})",
    ),
    "unknown_field": ("trường không biết: {field}", "unknown field: {field}"),
    "bad_name": (
        "tên '{name}' không hợp lệ (SenML: chữ, số, - : . / _)",
        "name '{name}' is invalid (SenML: letters, digits, - : . / _)",
    ),
    "no_value": ("không có giá trị số hữu hạn (v)", "no finite numeric value (v)"),
    "bad_time": ("thời điểm {time} nằm ngoài khoảng cho phép", "time {time} is out of range"),
    "other_device": (
        "tên '{name}' thuộc thiết bị khác, không phải {device}",
        "name '{name}' belongs to another device, not {device}",
    ),
    "unknown_property": (
        "đại lượng '{property}' không có (có: {known})",
        "property '{property}' does not exist (known: {known})",
    ),
    "no_datastream": (
        "thiết bị {device} chưa đăng ký luồng dữ liệu '{property}' (gis-ioc iot register)",
        "device {device} has no datastream '{property}' (gis-ioc iot register)",
    ),
    "bad_unit": (
        "đơn vị '{unit}' sai cho '{property}' (đúng: {expected})",
        "unit '{unit}' is wrong for '{property}' (expected {expected})",
    ),
    "bad_topic": (
        "chủ đề '{topic}' không phải {prefix}/<mã thiết bị>",
        "topic '{topic}' is not {prefix}/<device code>",
    ),
}
_EXPECTED = {"text": ("chuỗi", "a string"), "number": ("số", "a number"), "bool": ("true/false", "true or false")}


def reason(code: str, lang: str = "vi", **values: object) -> str:
    """The reason ``code`` in Vietnamese (``vi``) or English, with its values filled in."""
    vi, en = REASONS[code]
    if "expected" in values and values["expected"] in _EXPECTED:
        values = {**values, "expected": _EXPECTED[str(values["expected"])][0 if lang == "vi" else 1]}
    return (vi if lang == "vi" else en).format(**values)


@dataclass(frozen=True)
class Property:
    id: str
    name_vi: str
    name_en: str
    unit: str
    min_valid: float | None
    max_valid: float | None


@dataclass(frozen=True)
class Datastream:
    id: int
    device_code: str
    property: Property
    interval_s: int

    def in_range(self, value: float) -> bool:
        low, high = self.property.min_valid, self.property.max_valid
        return (low is None or value >= low) and (high is None or value <= high)

    def unit_ok(self, unit: str | None) -> bool:
        return unit is None or unit in UNIT_ALIASES.get(self.property.unit, frozenset({self.property.unit}))


class DeviceError(GisIocError):
    status = 422
    title = "IoT device"


def check_device_code(code: str) -> str:
    if not _DEVICE.match(code):
        raise InvalidInput(
            f"device code {code!r} is invalid (letters, digits, _ . -; at most 64)",
            vi=f"mã thiết bị {code!r} không hợp lệ (chữ, số, _ . -; tối đa 64 ký tự)",
        )
    return code


def topic_of(device_code: str) -> str:
    return f"{TOPIC_PREFIX}/{device_code}"


def properties(conn: psycopg.Connection[Any]) -> dict[str, Property]:
    rows = conn.execute(
        "SELECT id, name_vi, name_en, unit, min_valid, max_valid FROM gis_ioc.iot_properties ORDER BY id"
    ).fetchall()
    return {r[0]: Property(*r) for r in rows}


def datastreams(conn: psycopg.Connection[Any], devices: list[str] | None = None) -> list[Datastream]:
    """The datastreams (of ``devices``, or all), by device and property."""
    props = properties(conn)
    rows = conn.execute(
        "SELECT id, device_code, property_id, interval_s FROM gis_ioc.iot_datastreams "
        "WHERE %(all)s OR device_code = ANY(%(devices)s) ORDER BY device_code, property_id",
        {"all": devices is None, "devices": devices or []},
    ).fetchall()
    return [Datastream(r[0], r[1], props[r[2]], r[3]) for r in rows]


def _device_approved(conn: psycopg.Connection[Any], device_code: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM layers.iot_devices WHERE device_code = %s AND approval = 'approved')",
        (device_code,),
    ).fetchone()
    return bool(row and row[0])


def register(conn: psycopg.Connection[Any], device_code: str, property_id: str, interval_s: int) -> Datastream:
    """Register (or change the expected interval of) the datastream ``device_code`` × ``property_id``."""
    check_device_code(device_code)
    if interval_s <= 0:
        raise InvalidInput(
            f"the interval must be a positive number of seconds, not {interval_s}",
            vi=f"chu kỳ phải là số giây dương, không phải {interval_s}",
        )
    props = properties(conn)
    if property_id not in props:
        known = ", ".join(props)
        raise InvalidInput(
            reason("unknown_property", "en", property=property_id, known=known),
            vi=reason("unknown_property", "vi", property=property_id, known=known),
        )
    if not _device_approved(conn, device_code):
        raise NotFound(
            f"no approved device {device_code} in the iot_devices layer",
            vi=f"không có thiết bị {device_code} đã phê duyệt trong lớp iot_devices",
        )
    row = conn.execute(
        "INSERT INTO gis_ioc.iot_datastreams (device_code, property_id, interval_s) VALUES (%s, %s, %s) "
        "ON CONFLICT (device_code, property_id) DO UPDATE SET interval_s = excluded.interval_s RETURNING id",
        (device_code, property_id, interval_s),
    ).fetchone()
    assert row is not None
    return Datastream(int(row[0]), device_code, props[property_id], interval_s)


# -- credentials --------------------------------------------------------------------------------------


def hash_secret(secret: str, iterations: int = HASH_ITERATIONS) -> str:
    """``$7$iterations$salt$hash`` (PBKDF2-HMAC-SHA512, 12-byte salt): mosquitto's password format."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(stored: str | None, secret: str) -> bool:
    """True when ``secret`` matches the stored hash (constant time; a missing hash is a mismatch)."""
    if not stored:
        hashlib.pbkdf2_hmac("sha512", secret.encode(), b"\0" * 12, HASH_ITERATIONS)  # same cost either way
        return False
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7":
            return False
        computed = hashlib.pbkdf2_hmac("sha512", secret.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def issue_credentials(conn: psycopg.Connection[Any], device_code: str) -> str:
    """A new secret for the device (replacing any earlier one); only its hash is stored. The broker's
    password file must be written again (:func:`gis_ioc.iot.broker.Broker.sync`) for MQTT to accept it."""
    check_device_code(device_code)
    if not _device_approved(conn, device_code):
        raise NotFound(
            f"no approved device {device_code} in the iot_devices layer",
            vi=f"không có thiết bị {device_code} đã phê duyệt trong lớp iot_devices",
        )
    secret = secrets.token_urlsafe(24)
    conn.execute(
        "INSERT INTO gis_ioc.iot_credentials (device_code, secret_hash) VALUES (%s, %s) "
        "ON CONFLICT (device_code) DO UPDATE SET secret_hash = excluded.secret_hash, created_at = now()",
        (device_code, hash_secret(secret)),
    )
    return secret


def secret_hash(conn: psycopg.Connection[Any], device_code: str) -> str | None:
    row = conn.execute(
        "SELECT secret_hash FROM gis_ioc.iot_credentials WHERE device_code = %s", (device_code,)
    ).fetchone()
    return str(row[0]) if row else None


def credential_hashes(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(device_code, hash) of every device with a secret, for the broker's password and ACL files."""
    rows = conn.execute("SELECT device_code, secret_hash FROM gis_ioc.iot_credentials ORDER BY device_code")
    return [(str(r[0]), str(r[1])) for r in rows.fetchall()]
