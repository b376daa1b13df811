-- Loads of files by GIS officers (issue 4): the report, the approval trail and rollback.
-- Each feature's provenance is its load_id: the load row carries the source unit, file name and sha256,
-- who loaded it and when; approval of a load makes its features visible (OGC API, scenarios).
ALTER TABLE gis_ioc.loads
    ADD COLUMN mode          text CHECK (mode IN ('append', 'replace', 'upsert')),
    ADD COLUMN source_date   date,
    ADD COLUMN report        jsonb,
    ADD COLUMN approved_by   text,
    ADD COLUMN approved_at   timestamptz,
    ADD COLUMN rolled_back_by text,
    ADD COLUMN rolled_back_at timestamptz;
CREATE INDEX loads_layer_idx ON gis_ioc.loads (layer_id, started_at DESC);

-- Rows an approved load took out of service (replace: the whole layer; upsert: the same keys).
-- Rolling the load back puts them back.
CREATE TABLE gis_ioc.load_superseded (
    load_id   bigint NOT NULL REFERENCES gis_ioc.loads (id),
    layer_id  text NOT NULL,
    fid       bigint NOT NULL,
    PRIMARY KEY (load_id, layer_id, fid)
);
CREATE INDEX load_superseded_fid_idx ON gis_ioc.load_superseded (layer_id, fid);

-- Planning drawings (georeferenced rasters stored as Cloud-Optimized GeoTIFF) and their documents.
CREATE TABLE gis_ioc.plans (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    load_id        bigint NOT NULL REFERENCES gis_ioc.loads (id),
    zone_code      text NOT NULL,
    name           text NOT NULL,
    cog_path       text NOT NULL,
    width          integer NOT NULL,
    height         integer NOT NULL,
    source_crs     text NOT NULL,
    footprint      geometry(MultiPolygon, 4326) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE gis_ioc.plan_documents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id     bigint NOT NULL REFERENCES gis_ioc.plans (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('explanatory_note', 'decision', 'other')),
    file_name   text NOT NULL,
    file_sha256 text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    path        text NOT NULL,
    size_bytes  bigint NOT NULL
);
