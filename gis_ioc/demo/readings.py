"""The demo's year of sensor readings in the live sensor tables (migration 0023).

Each demo sensor gets a datastream per quantity it measures (one reading a day: ``interval_s`` 86400);
the readings are COPYed into ``gis_ioc.iot_observations`` (the months' partitions made first), then the
hourly and daily rollups and the latest values are computed from them in SQL, exactly as the ingester
keeps them: readings outside the property's physical range are flagged ``out_of_range`` and left out
of the rollups. Removing the demo removes the datastreams of demo devices with all of their rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.database.loads import copy_rows
from gis_ioc.iot.store import ensure_partitions, months_of

#: The demo generator's quantity names → the observed properties of the sensor tables.
PROPERTIES = {"pm25": "pm25", "pm10": "pm10", "water_level": "water_level", "rainfall": "rain"}
DAILY = 86_400

_DEMO_STREAMS = (
    "SELECT d.id FROM gis_ioc.iot_datastreams d JOIN layers.iot_devices t USING (device_code) WHERE t.is_demo"
)


def clear(conn: psycopg.Connection[Any]) -> None:
    """Remove the datastreams of demo devices, everything recorded for them and their alerts (call before
    the devices go)."""
    ids = [r[0] for r in conn.execute(_DEMO_STREAMS)]
    if not ids:
        return
    for table in ("iot_observations", "iot_latest", "iot_hourly", "iot_daily"):
        conn.execute(f"DELETE FROM gis_ioc.{table} WHERE datastream_id = ANY(%s)", (ids,))  # noqa: S608 (fixed names)
    conn.execute(
        "DELETE FROM gis_ioc.iot_alerts WHERE device_code IN (SELECT device_code FROM layers.iot_devices WHERE is_demo)"
    )
    conn.execute("DELETE FROM gis_ioc.iot_datastreams WHERE id = ANY(%s)", (ids,))


_ROLLUPS = (
    """UPDATE gis_ioc.iot_observations o SET flags = ARRAY['out_of_range']
         FROM gis_ioc.iot_datastreams d JOIN gis_ioc.iot_properties p ON p.id = d.property_id
        WHERE o.datastream_id = d.id AND d.id = ANY(%(ids)s)
          AND (o.result < p.min_valid OR o.result > p.max_valid)""",
    """INSERT INTO gis_ioc.iot_hourly (datastream_id, hour, n, mean, min, max)
       SELECT datastream_id, date_trunc('hour', phenomenon_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
              count(*), avg(result), min(result), max(result)
         FROM gis_ioc.iot_observations
        WHERE datastream_id = ANY(%(ids)s) AND NOT 'out_of_range' = ANY(flags) GROUP BY 1, 2""",
    """INSERT INTO gis_ioc.iot_daily (datastream_id, day, n, mean, min, max)
       SELECT datastream_id, (phenomenon_time AT TIME ZONE 'Asia/Ho_Chi_Minh')::date,
              count(*), avg(result), min(result), max(result)
         FROM gis_ioc.iot_observations
        WHERE datastream_id = ANY(%(ids)s) AND NOT 'out_of_range' = ANY(flags) GROUP BY 1, 2""",
    """INSERT INTO gis_ioc.iot_latest (datastream_id, phenomenon_time, result, received_at, flags)
       SELECT DISTINCT ON (datastream_id) datastream_id, phenomenon_time, result, received_at, flags
         FROM gis_ioc.iot_observations WHERE datastream_id = ANY(%(ids)s)
        ORDER BY datastream_id, phenomenon_time DESC""",
)


def write(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
    """Datastreams, observations, rollups and latest values from the generator's rows
    ``(device_code, quantity, observed_at, value, unit)``; the numbers of rows written per table."""
    pairs = sorted({(r[0], PROPERTIES[r[1]]) for r in rows})
    found = conn.execute(
        "INSERT INTO gis_ioc.iot_datastreams (device_code, property_id, interval_s) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]) RETURNING device_code, property_id, id",
        ([p[0] for p in pairs], [p[1] for p in pairs], [DAILY] * len(pairs)),
    ).fetchall()
    streams = {(device, prop): ds for device, prop, ds in found}
    ensure_partitions(conn, months_of((r[2] for r in rows), datetime.now(UTC)))
    received = datetime.now(UTC)
    counts = {"iot_datastreams": len(streams)}
    counts["iot_observations"] = copy_rows(
        conn,
        sql.Identifier("gis_ioc", "iot_observations"),
        ["datastream_id", "phenomenon_time", "result", "received_at"],
        _observations(rows, streams, received),
    )
    ids = {"ids": sorted(streams.values())}
    for statement in _ROLLUPS:
        conn.execute(statement, ids)
    for table in ("iot_hourly", "iot_daily", "iot_latest"):
        row = conn.execute(f"SELECT count(*) FROM gis_ioc.{table} WHERE datastream_id = ANY(%(ids)s)", ids).fetchone()  # noqa: S608
        counts[table] = int(row[0]) if row else 0
    return counts


def _observations(
    rows: Iterable[tuple[Any, ...]], streams: dict[tuple[str, str], int], received: datetime
) -> Iterable[tuple[Any, ...]]:
    for device, quantity, observed, value, _unit in rows:
        yield (streams[(device, PROPERTIES[quantity])], observed, value, received)
