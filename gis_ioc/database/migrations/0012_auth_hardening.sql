-- Accounts and the audit trail hardened (issue 11).

-- Second factor. totp_secret now holds the secret encrypted by the application ('v1:' + AES-256-GCM with
-- GIS_IOC_HOME/secrets/totp_key, bound to the account's id): the key is outside the database and its
-- dumps. Secrets stored in clear before this migration stay readable and are encrypted at the account's
-- next login (or all at once by `gis-ioc account encrypt-totp`).
-- totp_last_step: the 30-second step of the last code accepted; a code of that step or an older one is
-- refused, so each code is used once. totp_pending: an enrolment started (after re-authentication) and
-- waiting for its first code, encrypted like the secret, until totp_pending_until.
ALTER TABLE gis_ioc.accounts
    ADD COLUMN totp_last_step      bigint,
    ADD COLUMN totp_pending        text,
    ADD COLUMN totp_pending_until  timestamptz;

-- The audit chain becomes keyed: `hash` is an HMAC-SHA256 computed by the application with
-- GIS_IOC_HOME/secrets/audit_key (never sent to the database), so the chain can no longer be computed
-- here; records up to legacy_through keep their SHA-256 links (gis_ioc.audit_digest).
DROP FUNCTION gis_ioc.audit_append(text, text, text, text, text, jsonb);

-- Where the chain starts after a prune: the last removed record (through_id), its hash (prev_hash) and an
-- HMAC of both written by `gis-ioc audit prune`; an anchor moved any other way does not verify.
ALTER TABLE gis_ioc.audit_anchor
    ADD COLUMN through_id      bigint NOT NULL DEFAULT 0,
    ADD COLUMN legacy_through  bigint NOT NULL DEFAULT 0,
    ADD COLUMN mac             text;
UPDATE gis_ioc.audit_anchor SET
    legacy_through = coalesce((SELECT max(id) FROM gis_ioc.audit), 0),
    through_id = coalesce((SELECT max((detail->>'through_id')::bigint) FROM gis_ioc.audit
                           WHERE action = 'audit.prune'), 0);

-- One successor per record: two writers that missed each other's lock could not fork the chain.
CREATE UNIQUE INDEX audit_prev_hash_key ON gis_ioc.audit (prev_hash);

-- Refusals are recorded at most a few per caller and address a minute, counted here.
CREATE INDEX audit_refusals_idx ON gis_ioc.audit (address, at) WHERE result IN ('denied', 'failed', 'refused', 'capped');

-- Retention is the one way out of the append-only table, and only for the table's owner (a role that
-- merely sets gis_ioc.audit_prune is still refused).
CREATE OR REPLACE FUNCTION gis_ioc.audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('gis_ioc.audit_prune', true) = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
