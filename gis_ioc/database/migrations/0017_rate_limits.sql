-- Login rate limits counted in PostgreSQL, so that they hold across every server process and host
-- (issue 12; gis_ioc/auth/ratelimit.py).
--
-- One row per (key, time bucket): `key` is a 16-byte BLAKE2b digest of the limiter's scope and the limited
-- value (address, or address and user name), never the value itself; `bucket` is the start of a window of
-- the limiter's length; `hits` the attempts counted in it; `expires_at` the end of the bucket's use (two
-- windows after its start: the current window, then as the weighted previous one). Expired rows are
-- deleted by the limiter itself (a small batch on a fraction of its calls), so the table holds about the
-- keys seen in the last two windows.
--
-- UNLOGGED: counters of the last minutes need no crash safety or replication; after a crash or a failover
-- they start again from zero, which only means a fresh minute for everyone.
CREATE UNLOGGED TABLE gis_ioc.rate_hits (
    key         bytea       NOT NULL CHECK (octet_length(key) = 16),
    bucket      timestamptz NOT NULL,
    hits        integer     NOT NULL DEFAULT 1 CHECK (hits > 0),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (key, bucket)
) WITH (fillfactor = 70);  -- room on each page for the counters' updates to stay HOT

CREATE INDEX rate_hits_expires_idx ON gis_ioc.rate_hits (expires_at);
