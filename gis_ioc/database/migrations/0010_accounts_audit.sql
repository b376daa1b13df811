-- Accounts, roles and keys (issue 7). Accounts are created, locked and removed only on a written
-- request, which is stored with every change; a deleted account keeps its row (anonymised) so that
-- the audit trail still says who did what.
CREATE TABLE gis_ioc.accounts (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username              text NOT NULL UNIQUE CHECK (username ~ '^[a-z][a-z0-9._-]{2,63}$'),
    full_name             text NOT NULL,
    agency                text NOT NULL,
    email                 text,
    roles                 text[] NOT NULL CHECK (
        cardinality(roles) > 0 AND roles <@ ARRAY['administrator', 'gis_officer', 'approver', 'leader',
                                                  'analyst', 'commune_officer', 'external']::text[]),
    communes              text[] NOT NULL DEFAULT '{}',  -- a commune officer's own communes
    grants                text[] NOT NULL DEFAULT '{}',  -- layers granted beyond what the roles give
    password_hash         text,                          -- argon2id; NULL: no password (API key or SSO only)
    password_changed_at   timestamptz,
    must_change_password  boolean NOT NULL DEFAULT true,
    totp_secret           text,                          -- base32; NULL until the second factor is enrolled
    state                 text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'locked', 'deleted')),
    state_reason          text,
    failed_logins         integer NOT NULL DEFAULT 0,
    locked_until          timestamptz,                   -- after too many failed logins
    created_at            timestamptz NOT NULL DEFAULT now(),
    last_login_at         timestamptz,
    last_seen_at          timestamptz
);

-- The written request behind each change of an account (document number, date, requesting agency).
CREATE TABLE gis_ioc.account_requests (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id         bigint NOT NULL REFERENCES gis_ioc.accounts (id),
    action             text NOT NULL CHECK (action IN ('create', 'lock', 'unlock', 'delete', 'grant', 'revoke',
                                                       'reset_password', 'issue_key', 'revoke_key')),
    document_number    text NOT NULL CHECK (length(trim(document_number)) > 0),
    document_date      date NOT NULL,
    requesting_agency  text NOT NULL CHECK (length(trim(requesting_agency)) > 0),
    detail             jsonb NOT NULL DEFAULT '{}',
    done_by            text NOT NULL,
    done_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_requests_account_idx ON gis_ioc.account_requests (account_id, done_at);

-- API keys: shown once, stored as SHA-256 of the whole key (keys are 256-bit random, so a fast hash is
-- enough); the prefix finds the row.
CREATE TABLE gis_ioc.api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES gis_ioc.accounts (id),
    prefix        text NOT NULL UNIQUE,
    key_sha256    text NOT NULL,
    label         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- Sessions of built-in accounts: opaque bearer tokens stored as SHA-256, with idle and absolute expiry.
CREATE TABLE gis_ioc.sessions (
    token_sha256   text PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES gis_ioc.accounts (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    address        text,
    second_factor  boolean NOT NULL DEFAULT false
);
CREATE INDEX sessions_account_idx ON gis_ioc.sessions (account_id);

-- The audit trail: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE) and hash-chained, so a
-- record removed or altered behind the application's back is found by `gis-ioc audit verify`.
CREATE TABLE gis_ioc.audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text NOT NULL,
    address    text,
    action     text NOT NULL,
    target     text,
    result     text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}',
    prev_hash  text NOT NULL,
    hash       text NOT NULL UNIQUE
);
CREATE INDEX audit_at_idx ON gis_ioc.audit (at);
CREATE INDEX audit_actor_idx ON gis_ioc.audit (actor, at);

-- Where the chain starts after old records were pruned (retention): the hash the first kept record follows.
CREATE TABLE gis_ioc.audit_anchor (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    prev_hash  text NOT NULL,
    pruned_to  timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO gis_ioc.audit_anchor (prev_hash) VALUES (repeat('0', 64));

CREATE FUNCTION gis_ioc.audit_digest(
    prev_hash text, at timestamptz, actor text, address text, action text, target text, result text, detail jsonb
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws(E'\x1f', prev_hash, to_char(at AT TIME ZONE 'UTC',
           'YYYY-MM-DD"T"HH24:MI:SS.US'), actor, coalesce(address, ''), action, coalesce(target, ''), result,
           detail::text), 'UTF8')), 'hex')
$$;

-- Append one record: serialised by an advisory lock so that the chain has no forks.
CREATE FUNCTION gis_ioc.audit_append(
    p_actor text, p_address text, p_action text, p_target text, p_result text, p_detail jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    previous text;
    stamp timestamptz := clock_timestamp();
    new_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('gis_ioc.audit'));
    SELECT hash INTO previous FROM gis_ioc.audit ORDER BY id DESC LIMIT 1;
    IF previous IS NULL THEN
        SELECT prev_hash INTO previous FROM gis_ioc.audit_anchor;
    END IF;
    INSERT INTO gis_ioc.audit (at, actor, address, action, target, result, detail, prev_hash, hash)
    VALUES (stamp, p_actor, p_address, p_action, p_target, p_result, coalesce(p_detail, '{}'), previous,
            gis_ioc.audit_digest(previous, stamp, p_actor, p_address, p_action, p_target, p_result,
                                 coalesce(p_detail, '{}')))
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- Append-only. Retention (`gis-ioc audit prune`) is the one way out: it sets gis_ioc.audit_prune for its
-- transaction and removes only the oldest records, moving the anchor to the hash the rest follow.
CREATE FUNCTION gis_ioc.audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('gis_ioc.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON gis_ioc.audit FOR EACH ROW EXECUTE FUNCTION gis_ioc.audit_refuse();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON gis_ioc.audit FOR EACH ROW EXECUTE FUNCTION gis_ioc.audit_refuse();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON gis_ioc.audit EXECUTE FUNCTION gis_ioc.audit_refuse();
