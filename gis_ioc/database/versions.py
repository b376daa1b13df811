"""Data versions: what each server process knows of every layer's version, kept current by PostgreSQL.

Every statement that changes a layer table's rows (a load, its approval or rollback, an edit, a restore)
bumps the table's row in ``gis_ioc.data_versions`` and sends ``NOTIFY gis_ioc_data`` with the table's
name (migration 0019; the statement-level triggers are attached by :func:`attach`, run by
``gis-ioc db upgrade``). Each server process keeps one listening connection (:class:`DataVersions`): on a
notification it reads the versions again and tells its subscribers which tables changed.

Caches key their entries on ``(…, version)`` (:class:`VersionedCache`), so any worker stops answering
from an entry once the data behind it changed anywhere. While the listener is not connected (PostGIS
restarting) versions are unknown (``None``) and caches are bypassed rather than trusted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from gis_ioc.catalog import Catalog

log = logging.getLogger("gis_ioc.versions")

CHANNEL = "gis_ioc_data"
LAYER_SCHEMA = "layers"
TRIGGER = "gis_ioc_data_version"


def attach(conn: psycopg.Connection[Any], catalog: Catalog) -> None:
    """Give every layer table of the catalog its version row and its statement-level trigger (idempotent)."""
    for layer in catalog:
        table = sql.Identifier(LAYER_SCHEMA, layer.table)
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                "FOR EACH STATEMENT EXECUTE FUNCTION gis_ioc.bump_data_version()"
            ).format(sql.Identifier(TRIGGER), table)
        )
        conn.execute(
            "INSERT INTO gis_ioc.data_versions (layer_table) VALUES (%s) ON CONFLICT DO NOTHING", (layer.table,)
        )


def read_versions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {str(t): int(v) for t, v in conn.execute("SELECT layer_table, version FROM gis_ioc.data_versions")}


Subscriber = Callable[[frozenset[str]], None]


class DataVersions:
    """The layers' versions as this process knows them, kept current by a listening connection.

    ``get(table)`` answers the version, or None while the listener is not connected (then no cache may
    be trusted). Subscribers are called with the tables that changed (every table after a reconnection,
    since notifications sent meanwhile were missed)."""

    def __init__(self, conninfo: Callable[[], str], *, retry_seconds: float = 2.0) -> None:
        self._conninfo = conninfo
        self._retry = retry_seconds
        self._versions: dict[str, int] = {}
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribers: list[Subscriber] = []
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ reading
    def get(self, table: str) -> int | None:
        with self._lock:
            return self._versions.get(table) if self._live else None

    @property
    def live(self) -> bool:
        return self._live

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def catch_up(self, conn: psycopg.Connection[Any]) -> None:
        """Read the versions now (after this process's own write): its next answers do not wait the few
        milliseconds the notification takes. Nothing while the listener is down (no cache is used then)."""
        if self._live:
            self._refresh(conn)

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gis-ioc-data-versions", daemon=True)
            self._thread.start()

    def wait_live(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._live

    def close(self) -> None:
        self._stop.set()  # the listener looks at it at least every second
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    self._refresh(conn, everything=True)
                    while not self._stop.is_set():
                        # wake at the first notification (or after a second, to look at the stop flag),
                        # then take the ones already queued with it: one refresh for a burst
                        changed = {n.payload for n in conn.notifies(timeout=1.0, stop_after=1)}
                        if changed:
                            changed |= {n.payload for n in conn.notifies(timeout=0.0, stop_after=1000)}
                            self._refresh(conn, changed)
            except (psycopg.Error, OSError) as exc:
                if not self._stop.is_set():
                    log.warning("data versions: listening stopped (%s); caches bypassed until it is back", exc)
            finally:
                self._live = False
            self._stop.wait(self._retry)

    def _refresh(self, conn: psycopg.Connection[Any], changed: Iterable[str] = (), *, everything: bool = False) -> None:
        versions = read_versions(conn)
        with self._lock:
            before = self._versions
            self._versions = versions
            self._live = True
        tables = frozenset(versions) | frozenset(before) if everything else frozenset(changed)
        tables |= frozenset(t for t, v in versions.items() if before.get(t) != v)
        for subscriber in self._subscribers:
            try:
                subscriber(tables)
            except Exception:  # one subscriber's failure must not stop the listener
                log.exception("data versions: a subscriber failed")


class VersionedCache:
    """A thread-safe LRU of byte strings bounded by their total size, keyed by ``(key, version)``.

    ``get``/``put`` take the data version the entry was made from: an entry made from an older version
    is never answered (and ages out). :meth:`drop` forgets the entries of one table at once."""

    def __init__(self, max_bytes: int, *, max_age: float = 300.0) -> None:
        self.max_bytes = max_bytes
        #: seconds an entry is answered at most, whatever the version (an answer may depend on the date:
        #: boundaries in force, features valid until a day)
        self.max_age = max_age
        self._entries: OrderedDict[tuple[str, Hashable, int], tuple[bytes, float]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, table: str, key: Hashable, version: int | None) -> bytes | None:
        if version is None or self.max_bytes <= 0:
            return None
        entry = (table, key, version)
        with self._lock:
            found = self._entries.get(entry)
            if found is None or time.monotonic() - found[1] > self.max_age:
                if found is not None:
                    self._size -= len(self._entries.pop(entry)[0])
                self.misses += 1
                return None
            self._entries.move_to_end(entry)
            self.hits += 1
            return found[0]

    def put(self, table: str, key: Hashable, version: int | None, value: bytes) -> None:
        if version is None or len(value) > self.max_bytes // 8:
            return  # unknown version, or one entry would crowd out the rest
        with self._lock:
            old = self._entries.pop((table, key, version), None)
            if old is not None:
                self._size -= len(old[0])
            self._entries[(table, key, version)] = (value, time.monotonic())
            self._size += len(value)
            while self._size > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped[0])

    def drop(self, tables: Iterable[str]) -> None:
        gone = set(tables)
        with self._lock:
            for entry in [e for e in self._entries if e[0] in gone]:
                self._size -= len(self._entries.pop(entry)[0])

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size
