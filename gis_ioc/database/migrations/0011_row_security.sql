-- Row-level security for the server's database role (issue 11, "PostgreSQL enforces as well").
-- The settings are made per transaction from the Viewer (gis_ioc/query/scope.py, SET LOCAL):
--   gis_ioc.rows      the non-public layer tables whose every row the viewer reads ('*': all of them)
--   gis_ioc.communes  the communes whose rows the viewer reads in the other commune-coded tables
-- Unset, both mean nothing. The roles and the policies on each layer table are made from the catalog
-- by gis_ioc/database/roles.py at every `gis-ioc db upgrade`.

CREATE FUNCTION gis_ioc.rows_all(layer_table text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('gis_ioc.rows', true), '') = '*'
        OR layer_table = ANY (string_to_array(nullif(current_setting('gis_ioc.rows', true), ''), ','))
$$;
COMMENT ON FUNCTION gis_ioc.rows_all(text) IS
    'May the transaction''s viewer read every row of this layer table? (setting gis_ioc.rows)';

CREATE FUNCTION gis_ioc.viewer_communes() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_to_array(nullif(current_setting('gis_ioc.communes', true), ''), ','), '{}'::text[])
$$;
COMMENT ON FUNCTION gis_ioc.viewer_communes() IS
    'The communes whose rows the transaction''s viewer may read (setting gis_ioc.communes)';
