-- gis_ioc core schema: system tables. Layer tables are made from the catalog (layers/*.yaml).
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS layers;

-- Every write of data goes through a load: provenance of each feature, indicator value and reading.
CREATE TABLE gis_ioc.loads (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('boundaries', 'demo', 'vector', 'raster', 'indicators', 'observations')),
    layer_id     text,
    source_unit  text,
    file_name    text,
    file_sha256  text CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    loaded_by    text NOT NULL DEFAULT current_user,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed', 'rolled_back')),
    approval     text NOT NULL DEFAULT 'draft' CHECK (approval IN ('draft', 'approved', 'rejected')),
    row_count    bigint,
    params       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX loads_kind_idx ON gis_ioc.loads (kind, started_at DESC);

-- What the catalog made: one row per layer table, with the definition it was last synced from.
CREATE TABLE gis_ioc.layer_tables (
    layer_id    text PRIMARY KEY,
    table_name  text NOT NULL UNIQUE,
    definition  jsonb NOT NULL,
    synced_at   timestamptz NOT NULL DEFAULT now()
);

-- Indicators: definitions and targets are synced from config/indicators.yaml.
CREATE TABLE gis_ioc.indicators (
    id          text PRIMARY KEY,
    sector      text NOT NULL,
    unit        text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('higher', 'lower')),
    definition  jsonb NOT NULL,
    synced_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gis_ioc.indicator_targets (
    indicator_id  text NOT NULL REFERENCES gis_ioc.indicators (id) ON DELETE CASCADE,
    period        text NOT NULL CHECK (period ~ '^\d{4}(-Q[1-4])?$'),
    commune_code  text CHECK (commune_code ~ '^\d{5}$'),  -- NULL: the province-wide target
    target        double precision NOT NULL,
    UNIQUE NULLS NOT DISTINCT (indicator_id, period, commune_code)
);

CREATE TABLE gis_ioc.indicator_values (
    indicator_id  text NOT NULL REFERENCES gis_ioc.indicators (id),
    commune_code  text NOT NULL CHECK (commune_code ~ '^\d{5}$'),
    period        text NOT NULL CHECK (period ~ '^\d{4}(-Q[1-4])?$'),
    value         double precision,
    numerator     double precision,
    denominator   double precision,
    is_demo       boolean NOT NULL DEFAULT false,
    load_id       bigint REFERENCES gis_ioc.loads (id),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator_id, commune_code, period)
);
CREATE INDEX indicator_values_period_idx ON gis_ioc.indicator_values (period, indicator_id);

-- Sensor readings of the IoT devices layer (layers.iot_devices.device_code).
CREATE TABLE gis_ioc.observations (
    device_code  text NOT NULL,
    quantity     text NOT NULL,
    observed_at  timestamptz NOT NULL,
    value        double precision NOT NULL,
    unit         text NOT NULL,
    is_demo      boolean NOT NULL DEFAULT false,
    load_id      bigint REFERENCES gis_ioc.loads (id),
    PRIMARY KEY (device_code, quantity, observed_at)
);
CREATE INDEX observations_quantity_time_idx ON gis_ioc.observations (quantity, observed_at);

-- Former communes (before 1 July 2025) to the units that replaced them.
CREATE TABLE gis_ioc.commune_crosswalk (
    old_code            text NOT NULL,
    old_name            text NOT NULL,
    old_district        text,
    old_district_code   text,
    old_province        text,
    old_province_code   text,
    new_code            text NOT NULL CHECK (new_code ~ '^\d{5}$'),
    new_name            text NOT NULL,
    merge_type          text NOT NULL CHECK (merge_type IN ('full', 'partial')),
    note                text,
    valid_from          date NOT NULL,
    PRIMARY KEY (old_code, new_code, valid_from)
);
