-- Each station's live state in the iot_devices collection (issue 14, item 5; gis_ioc/iot/judge.py, the
-- layer file's `live` block, gis_ioc/publish/features.py).
--
-- iot_station_state: what the judge concluded about a device (its VN_AQI, band, deciding parameter and the
-- hour or day it is for; the flood alarm level 0–3 of a gauge standing for a hydrological station), written
-- in the same transaction as the alerts it reconciles. Grants: gis_ioc/database/roles.py BOOKKEEPING (the
-- ingester and `gis-ioc iot judge` run as the server's role).
CREATE TABLE gis_ioc.iot_station_state (
    device_code  text PRIMARY KEY,
    aqi          integer CHECK (aqi >= 0),
    aqi_band     text,
    aqi_dominant text,
    aqi_basis    text CHECK (aqi_basis IN ('hour', 'day')),
    aqi_at       timestamptz,    -- the hour, or the start of the Vietnamese day (00:00+07), the AQI is for
    flood_level  integer CHECK (flood_level BETWEEN 0 AND 3),
    judged_at    timestamptz NOT NULL,
    CHECK ((aqi IS NULL) = (aqi_band IS NULL) AND (aqi IS NULL) = (aqi_basis IS NULL))
);

-- One row per device having a datastream: the latest reading's time, the latest value of each observed
-- property (a value flagged out of range is not shown, as it is not judged), the judge's state, `stale`
-- computed when read (a datastream silent for more than 3 of its intervals since its last reading, or
-- since it was made: gis_ioc.iot.judge.is_stale), and the alerts not closed. security_invoker: read with
-- the privileges of whoever reads it (the server's role may read every table it joins), so it gives nobody
-- more than they already hold; the layer's row-level security applies to the table it is joined with.
CREATE VIEW gis_ioc.iot_station_live WITH (security_invoker = true) AS
WITH latest AS (
    SELECT d.device_code,
           max(l.phenomenon_time) AS observed_at,
           bool_or(now() - coalesce(l.phenomenon_time, d.created_at) > make_interval(secs => 3 * d.interval_s))
               AS stale,
           max(v.result) FILTER (WHERE d.property_id = 'pm25') AS pm25,
           max(v.result) FILTER (WHERE d.property_id = 'pm10') AS pm10,
           max(v.result) FILTER (WHERE d.property_id = 'no2') AS no2,
           max(v.result) FILTER (WHERE d.property_id = 'o3') AS o3,
           max(v.result) FILTER (WHERE d.property_id = 'co') AS co,
           max(v.result) FILTER (WHERE d.property_id = 'so2') AS so2,
           max(v.result) FILTER (WHERE d.property_id = 'water_level') AS water_level,
           max(v.result) FILTER (WHERE d.property_id = 'rain') AS rain,
           max(v.result) FILTER (WHERE d.property_id = 'temperature') AS temperature,
           max(v.result) FILTER (WHERE d.property_id = 'humidity') AS humidity
      FROM gis_ioc.iot_datastreams d
      LEFT JOIN gis_ioc.iot_latest l ON l.datastream_id = d.id
      LEFT JOIN LATERAL (SELECT CASE WHEN 'out_of_range' = ANY (l.flags) THEN NULL ELSE l.result END AS result) v
             ON true
     GROUP BY d.device_code
), alerts AS (
    SELECT device_code, count(*)::integer AS open_alerts
      FROM gis_ioc.iot_alerts WHERE state <> 'closed' GROUP BY device_code
)
SELECT latest.device_code, latest.observed_at,
       latest.pm25, latest.pm10, latest.no2, latest.o3, latest.co, latest.so2,
       latest.water_level, latest.rain, latest.temperature, latest.humidity,
       s.aqi, s.aqi_band, s.aqi_dominant, s.aqi_basis, s.aqi_at, s.flood_level,
       latest.stale, coalesce(alerts.open_alerts, 0) AS open_alerts, s.judged_at
  FROM latest
  LEFT JOIN gis_ioc.iot_station_state s ON s.device_code = latest.device_code
  LEFT JOIN alerts ON alerts.device_code = latest.device_code;

-- Privileges: grant_bookkeeping (gis_ioc/database/roles.py) grants SELECT on the view to gis_ioc's roles;
-- as a security_invoker view it is read under its reader's own privileges on the tables above.
