-- Every layer's approved states over time (issue 17): system-time columns on each layer table.
-- sys_from: when the row was published (its load approved); sys_to: when a later approval took it out of
-- service (NULL: in service, or never published). A row with approval 'approved' or 'rejected' and a
-- sys_from was the published state during [sys_from, sys_to); drafts have no published time.
-- New layer tables get these columns from the catalog (gis_ioc.catalog.ddl); this adds them to the tables
-- that exist, with a backfill from the loads' approval times and gis_ioc.load_superseded.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT to_regclass(table_name) FROM gis_ioc.layer_tables WHERE to_regclass(table_name) IS NOT NULL
    LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS sys_from timestamptz DEFAULT now(), '
                       'ADD COLUMN IF NOT EXISTS sys_to timestamptz', t);
        -- published since its load was approved (rows loaded before loads kept approvals: since their update)
        EXECUTE format('UPDATE %s x SET sys_from = coalesce(l.approved_at, l.finished_at, x.updated_at)
                          FROM (SELECT x2.fid, l2.approved_at, l2.finished_at FROM %s x2
                                  LEFT JOIN gis_ioc.loads l2 ON l2.id = x2.load_id) l
                         WHERE l.fid = x.fid AND x.approval <> ''draft''', t, t);
        EXECUTE format('UPDATE %s x SET sys_from = NULL WHERE x.approval = ''draft''', t);
        -- out of service since the approval of the load that superseded it
        EXECUTE format('UPDATE %s x SET sys_to = coalesce(s.at, x.updated_at)
                          FROM (SELECT s2.fid, max(l2.approved_at) AS at FROM gis_ioc.load_superseded s2
                                  JOIN gis_ioc.loads l2 ON l2.id = s2.load_id
                                 WHERE s2.layer_id = (SELECT layer_id FROM gis_ioc.layer_tables
                                                       WHERE to_regclass(table_name) = %L::regclass)
                                 GROUP BY s2.fid) s
                         WHERE s.fid = x.fid AND x.approval = ''rejected''', t, t::text);
        EXECUTE format('UPDATE %s x SET sys_to = x.updated_at WHERE x.approval = ''rejected'' AND x.sys_to IS NULL', t);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (sys_from, sys_to)',
                       (SELECT layer_id FROM gis_ioc.layer_tables WHERE to_regclass(table_name) = t) || '_sys_idx', t);
    END LOOP;
END $$;
