-- Data versions (issue 12): every change to a layer's rows bumps its version and tells every server
-- process (NOTIFY gis_ioc_data, payload: the table), so caches keyed by (layer, version) are never stale
-- across workers. The triggers are attached to each layer table by `gis-ioc db upgrade`
-- (gis_ioc.database.versions.attach), statement-level: one bump per statement, whatever its size.
CREATE TABLE gis_ioc.data_versions (
    layer_table text PRIMARY KEY,
    version     bigint NOT NULL DEFAULT 1,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION gis_ioc.bump_data_version() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO gis_ioc.data_versions AS d (layer_table, version, changed_at)
    VALUES (TG_TABLE_NAME, 1, now())
    ON CONFLICT (layer_table) DO UPDATE SET version = d.version + 1, changed_at = now();
    PERFORM pg_notify('gis_ioc_data', TG_TABLE_NAME);
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION gis_ioc.bump_data_version() FROM PUBLIC;
