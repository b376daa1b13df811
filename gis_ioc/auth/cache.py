"""The principals of API keys a server process has checked, kept while the credentials' version stands.

An OGC client (QGIS, GDAL, another system) sends its API key with every request; looking it up costs a
transaction on the primary each time. Each process keeps what the lookup answered, keyed by a digest of
the key (never the key), and valid only while

- the credentials' version is the one the entry was made under: any change to accounts, keys or a
  writer's position bumps it and notifies every process (migration 0020,
  :class:`gis_ioc.database.versions.DataVersions`), so a lock, a revocation or a change of roles or
  grants takes effect at once in every worker; while the listener is not connected nothing is cached;
- and it is younger than ``ttl`` seconds, so a key's expiry and its ``last_used_at`` bookkeeping lag by
  at most that much.

Refusals are never cached (each is checked, counted and audited again).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from gis_ioc.auth.sessions import Principal
from gis_ioc.database.versions import DataVersions

#: the credentials' pseudo-table in gis_ioc.data_versions (migration 0020)
CREDENTIALS = "~credentials"


class PrincipalCache:
    def __init__(self, versions: DataVersions, *, ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self.versions = versions
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[Principal, int, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _digest(credential: str) -> bytes:
        return hashlib.blake2b(credential.encode("utf-8", "surrogatepass"), digest_size=20).digest()

    def version(self) -> int | None:
        """The credentials' version now (None: unknown, nothing may be cached or answered)."""
        return self.versions.get(CREDENTIALS)

    def get(self, credential: str) -> Principal | None:
        version = self.version()
        if version is None:
            return None
        digest = self._digest(credential)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            principal, made_under, made_at = entry
            if made_under != version or now - made_at > self.ttl:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return principal

    def put(self, credential: str, principal: Principal, version: int | None) -> None:
        """Keep what the lookup answered, under the version read before the lookup began (an entry made
        while the version moved is thrown away at its first use)."""
        if version is None:
            return
        with self._lock:
            self._entries[self._digest(credential)] = (principal, version, time.monotonic())
            self._entries.move_to_end(self._digest(credential))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
