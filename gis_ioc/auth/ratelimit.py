"""Rate limits counted in PostgreSQL (``gis_ioc.rate_hits``), so that they hold across every server process
and host: a login attempt counts the same whichever worker answers it.

Each check is one statement in its own short transaction, on a connection of its own from the
application's pool, committed before the login itself starts: a refused login's rollback cannot undo its
count. The counter is a sliding-window estimate: the hits of the current window (``window`` seconds,
aligned on the database's clock, the one clock every process shares) plus those of the previous window
weighted by how much of it still lies within the last ``window`` seconds, rounded up. An attempt over the
limit is refused with :class:`TooManyRequests` (429, ``Retry-After`` the seconds until one more attempt fits)
and is not counted, so a client that waits as told gets in. Concurrent attempts on one key serialize on
its row (``INSERT … ON CONFLICT DO UPDATE … WHERE``), so no two processes can both take the last place.

Keys are stored as 16-byte BLAKE2b digests of the limiter's scope and the value (an address, a user
name), never the values. Rows live two windows; a fraction of the checks also delete a batch of expired
rows (skipping rows another process is deleting), so the table holds about the keys of the last two
windows.

Fail closed: when PostgreSQL cannot be reached the check raises
:class:`~gis_ioc.errors.DatabaseUnavailable` (503), and the login is refused, as it would be anyway without
the accounts table.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from psycopg_pool import ConnectionPool

from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import GisIocError


class TooManyRequests(GisIocError):
    """429; ``retry_after`` (seconds) is sent as the ``Retry-After`` header."""

    status = 429
    title = "Too many requests"
    code = "auth.rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: One attempt: count it if the estimate leaves room, prune expired rows when asked; answer whether it was
#: counted, the current window's hits, the previous window's and the seconds elapsed in the current one.
CHECK = """
WITH clock AS (
    SELECT date_bin(make_interval(secs => %(window)s), now(), 'epoch') AS bucket, now() AS at
), est AS (
    SELECT clock.bucket,
           extract(epoch FROM clock.at - clock.bucket)::float8 AS elapsed,
           coalesce(p.hits, 0) AS prev,
           ceil(coalesce(p.hits, 0) * (1 - extract(epoch FROM clock.at - clock.bucket)::float8 / %(window)s))::int
               AS carried
    FROM clock
    LEFT JOIN gis_ioc.rate_hits p ON p.key = %(key)s AND p.bucket = clock.bucket - make_interval(secs => %(window)s)
), hit AS (
    INSERT INTO gis_ioc.rate_hits AS r (key, bucket, hits, expires_at)
    SELECT %(key)s, est.bucket, 1, est.bucket + make_interval(secs => 2 * %(window)s) FROM est
    WHERE est.carried < %(limit)s
    ON CONFLICT (key, bucket) DO UPDATE SET hits = r.hits + 1
    WHERE r.hits + (SELECT carried FROM est) < %(limit)s
    RETURNING r.hits
), pruned AS (
    DELETE FROM gis_ioc.rate_hits WHERE %(prune)s AND ctid = ANY (ARRAY(
        SELECT ctid FROM gis_ioc.rate_hits WHERE %(prune)s AND expires_at < now()
        ORDER BY expires_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED))
)
SELECT (SELECT hits FROM hit) AS counted,
       coalesce((SELECT c.hits FROM gis_ioc.rate_hits c WHERE c.key = %(key)s AND c.bucket = est.bucket), 0)
           AS current,
       est.prev,
       est.elapsed
FROM est
"""

#: The same estimate, read only: would one more attempt be over the limit?
PEEK = """
WITH clock AS (
    SELECT date_bin(make_interval(secs => %(window)s), now(), 'epoch') AS bucket, now() AS at
)
SELECT coalesce(c.hits, 0) AS current,
       coalesce(p.hits, 0) AS prev,
       extract(epoch FROM clock.at - clock.bucket)::float8 AS elapsed
FROM clock
LEFT JOIN gis_ioc.rate_hits c ON c.key = %(key)s AND c.bucket = clock.bucket
LEFT JOIN gis_ioc.rate_hits p ON p.key = %(key)s AND p.bucket = clock.bucket - make_interval(secs => %(window)s)
"""

PRUNE = """
DELETE FROM gis_ioc.rate_hits WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM gis_ioc.rate_hits WHERE expires_at < now()
    ORDER BY expires_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED))
"""


def retry_after(limit: int, window: int, current: int, prev: int, elapsed: float) -> int:
    """Whole seconds until one more attempt fits the estimate (at least 1)."""
    room = limit - 1 - current  # what the previous window's weighted hits may still be
    if room >= 0 and prev > 0:
        at = window * (1 - room / prev)  # when ceil(prev * (1 - t/window)) <= room
        if at < window:
            return max(1, math.ceil(at - elapsed))
    if room >= 0 and prev == 0:
        return 1  # room already (another process's attempt just ended): try again
    # after this window: its hits become the previous window's, fading until one more fits
    fade = window * (1 - (limit - 1) / current) if current > limit - 1 else 0.0
    return max(1, math.ceil(window - elapsed + fade))


class RateLimiter:
    """At most ``limit`` attempts per ``window`` seconds for one key, counted in ``gis_ioc.rate_hits``
    for every process that shares the database. ``scope`` keeps limiters' keys apart."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        scope: str,
        limit: int,
        window: int = 60,
        *,
        prune_share: float = 0.05,
        prune_batch: int = 1000,
        message: str = "too many login attempts: wait a minute",
    ) -> None:
        if limit < 1 or window < 1:
            raise ValueError("a rate limit needs a limit and a window of at least 1")
        self.pool = pool
        self.scope = scope
        self.limit = limit
        self.window = window
        self.prune_share = prune_share
        self.prune_batch = prune_batch
        self.message = message

    def digest(self, key: str) -> bytes:
        """The stored form of ``key``: 16 bytes, whatever its length, and not the key itself."""
        data = f"{self.scope}\x00{key}".encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=16).digest()

    def check(self, key: str) -> None:
        """Count one attempt for ``key``, or raise :class:`TooManyRequests` (not counted) when over the limit.
        Raises :class:`~gis_ioc.errors.DatabaseUnavailable` (503) when PostgreSQL cannot be reached."""
        params = {
            "key": self.digest(key),
            "window": self.window,
            "limit": self.limit,
            "prune": random.random() < self.prune_share,  # noqa: S311 (which calls prune: no secret)
            "batch": self.prune_batch,
        }
        # its own pooled connection and transaction, committed before the caller goes on (and before
        # TooManyRequests is raised, outside the pool's block: nothing is rolled back)
        with translate_errors(), self.pool.connection(timeout=10) as conn, conn.transaction():
            row = conn.execute(CHECK, params).fetchone()
        assert row is not None
        counted, current, prev, elapsed = row
        if counted is None:
            raise TooManyRequests(
                self.message, retry_after=retry_after(self.limit, self.window, current, prev, elapsed)
            )

    def refuse_if_over(self, key: str) -> None:
        """Raise :class:`TooManyRequests` when ``key`` has used up its attempts, counting nothing: for
        credentials sent with every request (HTTP Basic), where only the failures are counted
        (:meth:`check`) and a client past the limit is refused before its credential is tried."""
        with translate_errors(), self.pool.connection(timeout=10) as conn:
            row = conn.execute(PEEK, {"key": self.digest(key), "window": self.window}).fetchone()
        assert row is not None
        current, prev, elapsed = row
        if current + math.ceil(prev * (1 - elapsed / self.window)) >= self.limit:
            raise TooManyRequests(
                self.message, retry_after=retry_after(self.limit, self.window, current, prev, elapsed)
            )

    def prune(self) -> int:
        """Delete one batch of expired rows (of every limiter); returns how many."""
        with translate_errors(), self.pool.connection(timeout=10) as conn, conn.transaction():
            return int(conn.execute(PRUNE, {"batch": self.prune_batch}).rowcount)
