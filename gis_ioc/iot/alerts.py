"""Sensor alerts and their lifecycle: open → acknowledged → closed (gis_ioc.iot_alerts, migration 0024).

An alert opens when a condition of :mod:`gis_ioc.iot.judge` starts to hold (a QCVN limit exceeded, an AQI
of Kém or worse, a flood alarm level, a stale datastream), follows it while it holds (its severity and
value are kept current), may be acknowledged by a user (HTTP or ``gis-ioc iot alerts ack``), opens again
when it grows worse after that (a higher alarm level, a worse AQI band), and closes when the condition
ends. One alert at most is live per device and condition (a unique index). Every transition is recorded
in the audit trail, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gis_ioc.auth import audit
from gis_ioc.errors import GisIocError, NotFound

if TYPE_CHECKING:
    from gis_ioc.iot.judge import Condition

SYSTEM = "system:iot-judge"
STATES = ("open", "acknowledged", "closed")


class AlertConflict(GisIocError):
    """The alert is not in a state that allows this transition."""

    status = 409
    title = "Conflict"


@dataclass(frozen=True)
class Alert:
    id: int
    device_code: str
    datastream_id: int | None
    kind: str
    condition: str
    state: str
    severity: int
    value: float | None
    threshold: float | None
    detail: dict[str, Any]
    opened_at: dt.datetime
    updated_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    closed_at: dt.datetime | None
    closed_by: str | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


_COLUMN_NAMES = [
    "id",
    "device_code",
    "datastream_id",
    "kind",
    "condition",
    "state",
    "severity",
    "value",
    "threshold",
    "detail",
    "opened_at",
    "updated_at",
    "acknowledged_at",
    "acknowledged_by",
    "closed_at",
    "closed_by",
]
_COLUMNS = sql.SQL(", ").join(sql.Identifier(name) for name in _COLUMN_NAMES)


def _lock(conn: psycopg.Connection[Any], devices: Iterable[str]) -> None:
    """Serialise judges of the same devices (two ingesters committing readings of one station)."""
    for device in sorted(set(devices)):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('gis_ioc.iot_alerts'), hashtext(%s))", (device,))


def reconcile(conn: psycopg.Connection[Any], devices: set[str], found: list[Condition], now: dt.datetime) -> int:
    """Bring the live alerts of ``devices`` in line with the conditions ``found`` for them: open the new,
    update the continuing (an acknowledged alert that grows worse opens again), close the ended. Returns the
    number of transitions (opened, opened again, closed)."""
    if not devices:
        return 0
    moved = 0
    with conn.transaction():
        _lock(conn, devices)
        live = {
            (r[1], r[2]): (r[0], r[3], r[4])
            for r in conn.execute(
                "SELECT id, device_code, condition, state, severity FROM gis_ioc.iot_alerts "
                "WHERE state <> 'closed' AND device_code = ANY(%s)",
                (sorted(devices),),
            )
        }
        holding = {(c.device_code, c.key): c for c in found}
        for (device, key), c in holding.items():
            if (device, key) in live:
                alert_id, state, severity = live[(device, key)]
                # worse than when it was acknowledged: open again, so that someone looks at it again
                reopen = state == "acknowledged" and c.severity > severity
                conn.execute(
                    "UPDATE gis_ioc.iot_alerts SET severity = %s, value = %s, threshold = %s, detail = %s, "
                    "datastream_id = %s, updated_at = %s, state = CASE WHEN %s THEN 'open' ELSE state END "
                    "WHERE id = %s AND (severity, value, threshold, detail) IS DISTINCT FROM (%s, %s, %s, %s)",
                    (
                        c.severity,
                        c.value,
                        c.threshold,
                        Jsonb(c.detail),
                        c.datastream_id,
                        now,
                        reopen,
                        alert_id,
                        c.severity,
                        c.value,
                        c.threshold,
                        Jsonb(c.detail),
                    ),
                )
                if reopen:
                    audit.record(
                        conn,
                        actor=SYSTEM,
                        action="iot.alert.reopen",
                        target=f"iot_alert {alert_id}",
                        detail={"device": device, "condition": key, "severity": c.severity, "before": severity},
                    )
                    moved += 1
                continue
            row = conn.execute(
                "INSERT INTO gis_ioc.iot_alerts (device_code, datastream_id, kind, condition, severity, value, "
                "threshold, detail, opened_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                (device, c.datastream_id, c.kind, key, c.severity, c.value, c.threshold, Jsonb(c.detail), now, now),
            ).fetchone()
            assert row is not None
            audit.record(
                conn,
                actor=SYSTEM,
                action="iot.alert.open",
                target=f"iot_alert {row[0]}",
                detail={"device": device, "condition": key, "severity": c.severity, "value": c.value},
            )
            moved += 1
        for (device, key), (alert_id, _, _) in live.items():
            if (device, key) not in holding:
                _close(conn, alert_id, SYSTEM, now, {"device": device, "condition": key, "reason": "ended"})
                moved += 1
    return moved


def _close(conn: psycopg.Connection[Any], alert_id: int, actor: str, now: dt.datetime, detail: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE gis_ioc.iot_alerts SET state = 'closed', closed_at = %s, closed_by = %s, updated_at = %s WHERE id = %s",
        (now, actor, now, alert_id),
    )
    audit.record(conn, actor=actor, action="iot.alert.close", target=f"iot_alert {alert_id}", detail=detail)


def get(conn: psycopg.Connection[Any], alert_id: int) -> Alert:
    with conn.cursor(row_factory=dict_row) as cur:
        query = sql.SQL("SELECT {} FROM gis_ioc.iot_alerts WHERE id = %s").format(_COLUMNS)
        row = cur.execute(query, (alert_id,)).fetchone()
    if row is None:
        raise NotFound(f"no sensor alert {alert_id}", vi=f"Không có cảnh báo cảm biến số {alert_id}")
    return Alert(**row)


def listing(
    conn: psycopg.Connection[Any],
    *,
    state: str | None = None,
    device_code: str | None = None,
    limit: int = 100,
    devices: list[str] | None = None,
) -> list[Alert]:
    """Alerts newest first, optionally of one state (``live``: open or acknowledged), of one device, or of
    ``devices`` only (those the viewer may read)."""
    if state is not None and state not in (*STATES, "live"):
        raise NotFound(f"unknown alert state {state!r}: open, acknowledged, closed or live")
    where = [sql.SQL("true")]
    args: list[Any] = []
    if state == "live":
        where.append(sql.SQL("state <> 'closed'"))
    elif state is not None:
        where.append(sql.SQL("state = %s"))
        args.append(state)
    if device_code is not None:
        where.append(sql.SQL("device_code = %s"))
        args.append(device_code)
    if devices is not None:
        where.append(sql.SQL("device_code = ANY(%s)"))
        args.append(devices)
    args.append(max(1, min(limit, 1000)))
    query = sql.SQL("SELECT {} FROM gis_ioc.iot_alerts WHERE {} ORDER BY opened_at DESC, id DESC LIMIT %s").format(
        _COLUMNS, sql.SQL(" AND ").join(where)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return [Alert(**r) for r in cur.execute(query, args).fetchall()]


def acknowledge(
    conn: psycopg.Connection[Any], alert_id: int, actor: str, *, address: str | None = None, note: str | None = None
) -> Alert:
    """A user takes note of an open alert (it stays live until its condition ends)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT state, device_code FROM gis_ioc.iot_alerts WHERE id = %s FOR UPDATE", (alert_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no sensor alert {alert_id}", vi=f"Không có cảnh báo cảm biến số {alert_id}")
        if row[0] != "open":
            raise AlertConflict(
                f"alert {alert_id} is {row[0]}: only an open alert can be acknowledged",
                vi=f"Cảnh báo {alert_id} đang ở trạng thái {_STATE_VI[row[0]]}: chỉ cảnh báo đang mở mới xác nhận được",
                code="iot.alert_not_open",
            )
        conn.execute(
            "UPDATE gis_ioc.iot_alerts SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s, "
            "updated_at = now() WHERE id = %s",
            (actor, alert_id),
        )
        detail: dict[str, Any] = {"device": row[1]}
        if note:
            detail["note"] = note[:500]
        audit.record(
            conn,
            actor=actor,
            action="iot.alert.acknowledge",
            target=f"iot_alert {alert_id}",
            address=address,
            detail=detail,
        )
    return get(conn, alert_id)


_STATE_VI = {"open": "mở", "acknowledged": "đã xác nhận", "closed": "đã đóng"}
