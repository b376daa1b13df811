-- Credentials' version (issue 12): each server process keeps the principals of API keys it has checked
-- (gis_ioc.auth.cache), valid only while this version stands. Any change that could change what a key
-- gives (an account locked, deleted, its roles, communes or grants changed, a key revoked, issued or
-- expired by hand, a writer's position for read replicas) bumps it and notifies every process at once.
-- Bookkeeping writes (last_login_at, last_seen_at, last_used_at) do not.
CREATE FUNCTION gis_ioc.bump_credentials_version() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO gis_ioc.data_versions AS d (layer_table, version, changed_at)
    VALUES ('~credentials', 1, now())
    ON CONFLICT (layer_table) DO UPDATE SET version = d.version + 1, changed_at = now();
    PERFORM pg_notify('gis_ioc_data', '~credentials');
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION gis_ioc.bump_credentials_version() FROM PUBLIC;
INSERT INTO gis_ioc.data_versions (layer_table) VALUES ('~credentials') ON CONFLICT DO NOTHING;

CREATE TRIGGER gis_ioc_credentials_version
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF username, roles, communes, grants, password_hash,
        password_changed_at, must_change_password, totp_secret, state, failed_logins, locked_until
    ON gis_ioc.accounts FOR EACH STATEMENT EXECUTE FUNCTION gis_ioc.bump_credentials_version();
CREATE TRIGGER gis_ioc_credentials_version
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF account_id, prefix, key_sha256, expires_at, revoked_at
    ON gis_ioc.api_keys FOR EACH STATEMENT EXECUTE FUNCTION gis_ioc.bump_credentials_version();
CREATE TRIGGER gis_ioc_credentials_version
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE
    ON gis_ioc.write_positions FOR EACH STATEMENT EXECUTE FUNCTION gis_ioc.bump_credentials_version();
