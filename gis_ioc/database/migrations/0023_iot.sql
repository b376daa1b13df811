-- Live sensors (issue 14; gis_ioc/iot). SensorThings-shaped: a device of the iot_devices layer observes
-- properties through datastreams (device × property, expected interval); observations are partitioned by
-- month of phenomenon time (native partitions made by gis_ioc.iot_ensure_partition, a DEFAULT partition
-- so nothing is lost). iot_latest, iot_hourly and iot_daily are maintained at commit by the ingester, in
-- the same transaction as the observations; readings flagged 'out_of_range' are stored but not rolled up.
-- Grants to the server's role: gis_ioc/database/roles.py BOOKKEEPING.
CREATE TABLE gis_ioc.iot_properties (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]*$'),
    name_vi     text NOT NULL,
    name_en     text NOT NULL,
    unit        text NOT NULL,
    min_valid   float8,
    max_valid   float8,
    CHECK (min_valid IS NULL OR max_valid IS NULL OR min_valid < max_valid)
);
INSERT INTO gis_ioc.iot_properties (id, name_vi, name_en, unit, min_valid, max_valid) VALUES
    ('pm25', 'Bụi PM2.5', 'PM2.5', 'µg/m³', 0, 1000),
    ('pm10', 'Bụi PM10', 'PM10', 'µg/m³', 0, 2000),
    ('no2', 'Nitơ đioxit (NO₂)', 'Nitrogen dioxide (NO₂)', 'µg/m³', 0, 2000),
    ('o3', 'Ôzôn (O₃)', 'Ozone (O₃)', 'µg/m³', 0, 1000),
    ('co', 'Cacbon monoxit (CO)', 'Carbon monoxide (CO)', 'µg/m³', 0, 100000),
    ('so2', 'Lưu huỳnh đioxit (SO₂)', 'Sulphur dioxide (SO₂)', 'µg/m³', 0, 2000),
    ('water_level', 'Mực nước', 'Water level', 'm', -5, 20),
    ('rain', 'Lượng mưa', 'Rainfall', 'mm', 0, 500),
    ('temperature', 'Nhiệt độ', 'Temperature', '°C', -10, 60),
    ('humidity', 'Độ ẩm', 'Relative humidity', '%', 0, 100);

CREATE TABLE gis_ioc.iot_datastreams (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_code text NOT NULL,
    property_id text NOT NULL REFERENCES gis_ioc.iot_properties,
    interval_s  integer NOT NULL CHECK (interval_s > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_code, property_id)
);

-- A device's secret for MQTT and HTTP, kept only as a PBKDF2-SHA512 hash in mosquitto's format
-- ($7$iterations$salt$hash), from which the broker's password file is written.
CREATE TABLE gis_ioc.iot_credentials (
    device_code text PRIMARY KEY,
    secret_hash text NOT NULL CHECK (secret_hash LIKE '$7$%'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gis_ioc.iot_observations (
    datastream_id   bigint NOT NULL,
    phenomenon_time timestamptz NOT NULL,
    result          float8 NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    flags           text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (datastream_id, phenomenon_time)
) PARTITION BY RANGE (phenomenon_time);
CREATE TABLE gis_ioc.iot_observations_default PARTITION OF gis_ioc.iot_observations DEFAULT;

CREATE TABLE gis_ioc.iot_latest (
    datastream_id   bigint PRIMARY KEY,
    phenomenon_time timestamptz NOT NULL,
    result          float8 NOT NULL,
    received_at     timestamptz NOT NULL,
    flags           text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE gis_ioc.iot_hourly (
    datastream_id bigint,
    hour          timestamptz,
    n             integer NOT NULL,
    mean          float8 NOT NULL,
    min           float8 NOT NULL,
    max           float8 NOT NULL,
    PRIMARY KEY (datastream_id, hour)
);

CREATE TABLE gis_ioc.iot_daily (
    datastream_id bigint,
    day           date,
    n             integer NOT NULL,
    mean          float8 NOT NULL,
    min           float8 NOT NULL,
    max           float8 NOT NULL,
    PRIMARY KEY (datastream_id, day)
);

CREATE TABLE gis_ioc.iot_dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL CHECK (source IN ('mqtt', 'http')),
    device_code text,
    topic       text,
    payload     bytea,
    reason      text NOT NULL
);
CREATE INDEX iot_dead_letters_received_idx ON gis_ioc.iot_dead_letters (received_at);

-- The monthly partition holding ``month`` (any day of it), made when missing; readings of that month
-- already in the DEFAULT partition move into it. Owned by the migrations' owner and callable by the
-- server's role, which owns no table (SECURITY DEFINER, search_path pinned); only months from ten years
-- back to three months ahead (a reading outside stays in the DEFAULT partition).
CREATE FUNCTION gis_ioc.iot_ensure_partition(month date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month::timestamp) AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'iot_observations_' || to_char(month, 'YYYYMM');
BEGIN
    IF month IS NULL OR month < (now() - interval '10 years')::date OR month >= (now() + interval '3 months')::date THEN
        RAISE EXCEPTION 'no partition for month %: outside ten years back to three months ahead', month
            USING ERRCODE = '22023';
    END IF;
    IF to_regclass('gis_ioc.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('gis_ioc.iot_ensure_partition'));
    IF to_regclass('gis_ioc.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    LOCK TABLE gis_ioc.iot_observations_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE gis_ioc.%I (LIKE gis_ioc.iot_observations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM gis_ioc.iot_observations_default WHERE phenomenon_time >= %L AND phenomenon_time < %L RETURNING *) '
        'INSERT INTO gis_ioc.%I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE gis_ioc.iot_observations ATTACH PARTITION gis_ioc.%I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN name;
END
$$;

-- This month and the next two exist from the start.
SELECT gis_ioc.iot_ensure_partition((date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => m))::date)
FROM generate_series(0, 2) AS m;
