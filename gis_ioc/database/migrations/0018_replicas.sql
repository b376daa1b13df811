-- Read replicas (issue 12): a writer's own next reads go to the primary until a replica has replayed its
-- last write. Each transaction that wrote for an account stamps the account's row here, in the same
-- transaction (so a replica that has the row has the write); the principal lookup (on the primary) reads
-- the stamp and the read's bind asks the replica whether it has the row at that position yet.
CREATE TABLE gis_ioc.write_positions (
    account    text PRIMARY KEY,
    lsn        pg_lsn NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);

-- Stamp the account's position, only if the calling transaction wrote (it has a transaction id): a
-- transaction that only read stamps nothing and stays read-only. The position is taken after the row
-- lock, so it grows in commit order even for concurrent writers of one account. Runs as its caller.
CREATE FUNCTION gis_ioc.stamp_write(who text) RETURNS pg_lsn
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stamped pg_lsn;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO gis_ioc.write_positions AS w (account, lsn, written_at)
    VALUES (who, pg_current_wal_insert_lsn(), now())
    ON CONFLICT (account) DO UPDATE SET lsn = pg_current_wal_insert_lsn(), written_at = now()
    RETURNING w.lsn INTO stamped;
    RETURN stamped;
END $$;
