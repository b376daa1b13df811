-- The audit records from before the key (issue 11, external security test): `gis-ioc audit verify`
-- recomputes their SHA-256 links in the application (gis_ioc/auth/audit.py), so the function that
-- computed them here goes: a function the database's owner may replace must take no part in checking
-- the owner's own trail. Nothing calls it since migration 0012 dropped gis_ioc.audit_append.
DROP FUNCTION IF EXISTS gis_ioc.audit_digest(text, timestamptz, text, text, text, text, text, jsonb);

COMMENT ON COLUMN gis_ioc.audit_anchor.legacy_through IS
    'Records up to this id were written before the audit key (migration 0012) and keep unkeyed SHA-256 links; '
    '0 on a database made since. Covered by mac and recorded in the head file: moving it is a finding';
COMMENT ON COLUMN gis_ioc.audit_anchor.mac IS
    '''v2:'' + HMAC-SHA256 (GIS_IOC_HOME/secrets/audit_key) of through_id, prev_hash and legacy_through, '
    'written by the application (a prune, or the owner''s first record); NULL: not sealed yet';
