"""Read replicas: the primary's pool knows its streaming standbys, where read-only work may go.

``GIS_IOC_DATABASE_REPLICA_URLS`` lists them. :func:`gis_ioc.database.connection.create_pool` then makes a
:class:`PrimaryPool`: the application's pool as before (everything that uses it directly, writes and the
principal lookup among them, reaches the primary), plus one pool per replica and a monitor thread.
:func:`gis_ioc.query.scope.transaction` decides per transaction:

- purpose ``read`` goes to a usable replica (reachable, no further behind than
  ``GIS_IOC_REPLICA_MAX_LAG_SECONDS``; round robin among them), else to the primary;
- ``aggregate`` and ``write`` (and ``read`` with ``writes=True``: a read door that also writes, such as an
  export's audit record) go to the primary;
- a writer's own next reads: each transaction that wrote for an account stamps the account's row in
  ``gis_ioc.write_positions`` *in the same transaction* (:data:`STAMP`). The principal lookup reads the
  stamp on the primary (it is carried in ``Principal.extra["write_lsn"]``), and the read's bind round trip
  asks the replica whether it already holds the row at that stamp (:data:`CAUGHT_UP`): holding it means
  holding the write. If not, the read goes to the primary. Nothing of this lives in one process's memory.
  A viewer whose stamp is not known (single sign-on tokens, console work, background jobs without the
  request's principal) reads from the primary. (A process that keeps principals of API keys keeps them
  only while the credentials' version stands; migration 0020 bumps it when a stamp changes.)

The primary stopping: reads go on from a replica (also a writer's, who then may not see their very last
write), the principal lookup falls back to a replica (read-only: no "last seen" bookkeeping), and what
must write answers 503 at once (:class:`PrimaryUnavailable`) instead of waiting for the pool.

Lag is measured per process by the monitor (every second): the primary's WAL position is sampled, and a
replica's lag is how long ago the primary was first seen at a position the replica has not replayed yet
(0 when it has replayed everything); without the primary, the replica's own received-vs-replayed WAL.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from gis_ioc.errors import DatabaseUnavailable

log = logging.getLogger("gis_ioc.replicas")

#: How often the monitor samples the primary and the replicas (seconds).
PROBE_EVERY = 1.0
#: How long a request waits for a primary connection while the primary is known to be unreachable.
DOWN_WAIT = 2.0
#: How long a replica found unreachable by a request is skipped (the monitor clears it sooner if it answers).
SKIP_FOR = 5.0
#: Stamp the account's write position, only if this transaction wrote (migration 0018: a transaction that
#: only read writes nothing); the position is taken under the row lock, so it grows in commit order.
STAMP = "SELECT gis_ioc.stamp_write(%s)::text"
#: Does this replica hold the account's stamp at least at this position (added to the bind's SELECT)?
CAUGHT_UP = "EXISTS (SELECT 1 FROM gis_ioc.write_positions WHERE account = %s AND lsn >= %s::pg_lsn)"
_REPLICA_PROBE = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text, "
    "extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)


class PrimaryUnavailable(DatabaseUnavailable):
    """The primary cannot be reached; replicas may still serve reads."""


def lsn_value(text: str | None) -> int | None:
    """``'16/B374D848'`` as a number (None stays None)."""
    if not text:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def address_of(conninfo: str) -> str:
    """host:port of a libpq address, without credentials or database."""
    params = conninfo_to_dict(conninfo)
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


@dataclass
class ReplicaState:
    """What the monitor last saw of one replica (reported by /readyz)."""

    reachable: bool = False
    lag_seconds: float | None = None
    replay_lsn: str | None = None
    checked_at: float = 0.0
    error: str | None = None

    def as_dict(self, address: str, max_lag: float) -> dict[str, Any]:
        return {
            "address": address,
            "reachable": self.reachable,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "replay_lsn": self.replay_lsn,
            "used": self.reachable and self.lag_seconds is not None and self.lag_seconds <= max_lag,
            "checked_seconds_ago": round(time.monotonic() - self.checked_at, 1) if self.checked_at else None,
            **({"error": self.error} if self.error else {}),
        }


class Replica:
    """One standby: its pool (the server's role), and the monitor's view of it."""

    def __init__(self, conninfo: str, pool: ConnectionPool[psycopg.Connection[Any]]) -> None:
        self.conninfo = conninfo
        self.address = address_of(conninfo)
        self.pool = pool
        self.state = ReplicaState()
        self.skip_until = 0.0
        self._probe_conn: psycopg.Connection[Any] | None = None

    def usable(self, max_lag: float) -> bool:
        state = self.state
        return (
            state.reachable
            and state.lag_seconds is not None
            and state.lag_seconds <= max_lag
            and time.monotonic() >= self.skip_until
        )

    def failed(self, exc: BaseException) -> None:
        """A request could not use it: skip it for a while (the monitor says when it is back)."""
        self.skip_until = time.monotonic() + SKIP_FOR
        self.state.reachable = False
        self.state.error = _first_line(exc)
        log.warning("replica %s unreachable, reading from the primary: %s", self.address, self.state.error)

    def probe(self, samples: deque[tuple[float, int]], primary_up: bool) -> None:
        now = time.monotonic()
        try:
            if self._probe_conn is None or self._probe_conn.closed:
                self._probe_conn = _probe_connect(self.conninfo)
            row = self._probe_conn.execute(_REPLICA_PROBE).fetchone()
        except psycopg.Error as exc:
            self._close_probe()
            self.state = ReplicaState(reachable=False, checked_at=now, error=_first_line(exc))
            return
        assert row is not None
        in_recovery, replay_text, receive_text, since_replay = row
        replay, receive = lsn_value(replay_text), lsn_value(receive_text)
        lag: float | None
        if not in_recovery or replay is None:
            lag = 0.0  # not a standby (a promoted one, or the primary itself): nothing to wait for
        elif primary_up and samples:
            lag = _lag_from_samples(samples, replay, now)
        elif receive is None or receive <= replay:
            lag = 0.0  # the primary is gone: behind nothing it knows of
        else:
            lag = float(since_replay) if since_replay is not None else None
        back = not self.state.reachable
        self.state = ReplicaState(reachable=True, lag_seconds=lag, replay_lsn=replay_text, checked_at=now)
        if back:  # it answers again: its idle connections may be broken (it restarted), check them first
            self.pool.check()
            self.skip_until = 0.0

    def _close_probe(self) -> None:
        if self._probe_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._probe_conn.close()
            self._probe_conn = None


def _lag_from_samples(samples: deque[tuple[float, int]], replay: int, now: float) -> float:
    """Seconds since the primary was first seen at a position the replica has not replayed."""
    if replay >= samples[-1][1]:
        return 0.0
    for seen_at, position in samples:
        if position > replay:
            return max(0.0, now - seen_at)
    return 0.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _probe_connect(conninfo: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        conninfo,
        autocommit=True,
        connect_timeout=2,
        options="-c statement_timeout=2000",
        application_name="gis_ioc-probe",
    )


class PrimaryPool(ConnectionPool[psycopg.Connection[Any]]):
    """The application's pool (the primary), knowing the replicas and whether the primary answers.

    Without replicas it is the plain pool, plus: a connection found broken when it is returned has the
    other idle connections checked (a restarted database leaves them all broken), and while the primary
    is known to be unreachable a request waits :data:`DOWN_WAIT` seconds for it, not its whole timeout.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        replicas: list[Replica] | None = None,
        max_lag: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(conninfo, **kwargs)
        self.replicas: list[Replica] = replicas or []
        self.max_lag = max_lag
        self.down_since: float | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._keep = max(60.0, 2 * max_lag)
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._checking = threading.Lock()
        self._probe_conn: psycopg.Connection[Any] | None = None

    # -- the primary's health ---------------------------------------------------------------------------

    @property
    def primary_down(self) -> bool:
        return self.down_since is not None

    def _mark(self, up: bool, why: BaseException | None = None) -> None:
        if up:
            if self.down_since is not None:
                log.warning("the primary answers again after %.0f s", time.monotonic() - self.down_since)
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("the primary is unreachable: %s", _first_line(why) if why else "?")

    def _connect(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        try:
            conn = super()._connect(timeout)
        except psycopg.OperationalError as exc:
            self._mark(False, exc)
            raise
        self._mark(True)
        return conn

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        wait = self.timeout if timeout is None else timeout
        if not self.replicas:
            return super().getconn(timeout=min(wait, DOWN_WAIT) if self.down_since is not None else wait)
        # with replicas the monitor notices the primary stopping within a second: wait in short steps, and
        # give up :data:`DOWN_WAIT` seconds in once it has (reads then go to a replica, writes answer 503)
        start = time.monotonic()
        while True:
            now = time.monotonic()
            limit = start + wait if self.down_since is None else start + min(wait, DOWN_WAIT)
            if now >= limit:
                if self.down_since is not None:
                    raise PoolTimeout(
                        "the primary database is unreachable: changes cannot be made now (reads are served by "
                        "the replicas); try again shortly"
                    )
                raise PoolTimeout(f"couldn't get a connection after {wait:.2f} sec")
            try:
                return super().getconn(timeout=min(limit - now, 0.5))
            except PoolTimeout:
                continue

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        broken = conn.broken
        super().putconn(conn)
        if broken:
            self.purge()

    def purge(self) -> None:
        """Check the idle connections now (one found broken: the others likely are too)."""
        if not self._checking.acquire(blocking=False):
            return
        try:
            self.check()
        finally:
            self._checking.release()

    # -- replicas ---------------------------------------------------------------------------------------

    def pick(self) -> Replica | None:
        """A usable replica (round robin), or None."""
        usable = [r for r in self.replicas if r.usable(self.max_lag)]
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    def replica_states(self) -> list[dict[str, Any]]:
        return [r.state.as_dict(r.address, self.max_lag) for r in self.replicas]

    def probe(self) -> None:
        """Sample the primary's WAL position and every replica (the monitor calls this every second)."""
        now = time.monotonic()
        try:
            if self._probe_conn is None or self._probe_conn.closed:
                self._probe_conn = _probe_connect(str(self.conninfo))
            row = self._probe_conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            position = lsn_value(row[0])
            assert position is not None
            if not self._samples or self._samples[-1][1] != position:
                self._samples.append((now, position))
            while len(self._samples) > 1 and now - self._samples[1][0] > self._keep:
                self._samples.popleft()
            self._mark(True)
        except psycopg.Error as exc:
            self._close_probe()
            was_up = not self.primary_down
            self._mark(False, exc)
            if was_up:  # the idle connections went with the primary: drop them now, not at a request's cost
                self.purge()
        for replica in self.replicas:
            replica.probe(self._samples, not self.primary_down)

    def _close_probe(self) -> None:
        if self._probe_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._probe_conn.close()
            self._probe_conn = None

    def _watch(self) -> None:
        while not self._stop.wait(PROBE_EVERY):
            try:
                self.probe()
            except Exception:  # the monitor never dies; the next round tries again
                log.exception("replica monitor")

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        if self.replicas and self._monitor is None:
            for replica in self.replicas:
                replica.pool.open(wait=False)
            self.probe()  # know the replicas before the first request
            self._stop.clear()
            self._monitor = threading.Thread(target=self._watch, name="gis_ioc-replica-monitor", daemon=True)
            self._monitor.start()
        super().open(wait=wait, timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=timeout)
            self._monitor = None
        self._close_probe()
        for replica in self.replicas:
            replica._close_probe()
            replica.pool.close(timeout=timeout)
        super().close(timeout=timeout)


def replicas_of(pool: Any) -> PrimaryPool | None:
    """The pool, if it has replicas to read from."""
    return pool if isinstance(pool, PrimaryPool) and pool.replicas else None


def _on[T](
    pool: ConnectionPool[Any], work: Callable[[psycopg.Connection[Any], bool], T], read_only: bool, timeout: float
) -> T:
    """``work`` on a connection of ``pool``, once more on a fresh one if the first was found broken (a
    database that restarted leaves its idle connections broken; the pool does not check them when lent)."""
    from gis_ioc.database.connection import translate_errors

    for attempt in (1, 2):
        with translate_errors(), pool.connection(timeout=timeout) as conn:
            try:
                return work(conn, read_only)
            except psycopg.OperationalError:
                if attempt == 2 or not conn.broken:
                    raise
        if isinstance(pool, PrimaryPool):
            pool.purge()
    raise AssertionError("unreachable")


def lookup[T](pool: Any, work: Callable[[psycopg.Connection[Any], bool], T], timeout: float = 10) -> T:
    """``work(conn, read_only)`` on the primary; when the primary is unreachable and a replica is usable,
    on the replica with ``read_only`` True (the principal lookup: who asks, without its bookkeeping)."""
    primary = replicas_of(pool)
    if primary is None or not primary.primary_down:
        try:
            return _on(pool, work, False, timeout)
        except DatabaseUnavailable:
            if primary is None or not primary.primary_down or primary.pick() is None:
                raise
    replica = primary.pick()
    if replica is None:
        raise PrimaryUnavailable("the primary database is unreachable and no replica can be read; try again shortly")
    return _on(replica.pool, work, True, timeout)
