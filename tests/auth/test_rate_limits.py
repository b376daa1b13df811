"""Login rate limits counted in PostgreSQL: two applications on one database stand for two worker
processes (or hosts); attempts answered by either are counted together, concurrent attempts cannot both
take the last place, the table holds digests only, the limit resets after its window (the buckets are
moved back in time rather than waited for), expired rows are pruned, and lockouts after failed logins
count every failure when two processes take them at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.app import create_app
from gis_ioc.auth import audit
from gis_ioc.auth.ratelimit import RateLimiter, TooManyRequests, retry_after
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.auth.conftest import create
from tests.conftest import INSIDE, scalar


@pytest.fixture(scope="module")
def workers(settings: Settings, loaded: DemoResult) -> Iterator[tuple[TestClient, TestClient]]:
    """Two applications on the suite's database: two worker processes, from one client address."""
    audit.configure(settings.home)
    with TestClient(create_app(settings), client=INSIDE) as one, TestClient(create_app(settings), client=INSIDE) as two:
        yield one, two


def _digests(client: TestClient, username: str) -> list[bytes]:
    state = client.app.state  # type: ignore[attr-defined]
    return [state.login_limiter.digest(f"{INSIDE[0]}|{username}"), state.address_limiter.digest(INSIDE[0])]


def _forget(db: psycopg.Connection[Any], keys: list[bytes]) -> None:
    """The suite's other tests log in from this address too: the counts start and end empty here."""
    db.execute("DELETE FROM gis_ioc.rate_hits WHERE key = ANY(%s)", (keys,))


def _login(client: TestClient, username: str, password: str = "not the password 1") -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_two_workers_count_together_store_digests_and_reset_after_the_window(
    workers: tuple[TestClient, TestClient], settings: Settings, db: psycopg.Connection[Any]
) -> None:
    one, two = workers
    limit = settings.auth_login_attempts_per_minute
    username = "rate.two.workers"
    keys = _digests(one, username)
    assert keys == _digests(two, username)  # same digests in every process
    _forget(db, keys)  # the suite's earlier logins from this address must not take the address's places
    before = scalar(db, "SELECT coalesce(sum(hits), 0) FROM gis_ioc.rate_hits WHERE key = %s", (keys[1],))
    try:
        answers = [_login((one, two)[i % 2], username) for i in range(limit + 1)]
        assert [a.status_code for a in answers] == [401] * limit + [429], [a.text for a in answers]
        # at most the window and the fading of its hits to one place below the limit
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60 + 60 // limit
        assert answers[-1].headers["content-type"].startswith("application/problem+json")
        assert _login(two, username).status_code == 429  # the other worker too
        # counted: the pair `limit` times (refusals are not counted); the address as often, not more
        pair = scalar(db, "SELECT sum(hits) FROM gis_ioc.rate_hits WHERE key = %s", (keys[0],))
        address = scalar(db, "SELECT sum(hits) FROM gis_ioc.rate_hits WHERE key = %s", (keys[1],))
        assert (pair, address - before) == (limit, limit)
        # digests only: 16 bytes, never the user name or the address
        rows = db.execute("SELECT key, bucket, expires_at FROM gis_ioc.rate_hits").fetchall()
        assert rows and all(len(key) == 16 for key, _, _ in rows)
        assert all(username.encode() not in key and INSIDE[0].encode() not in key for key, _, _ in rows)
        dump = " ".join(str(v) for row in db.execute("SELECT * FROM gis_ioc.rate_hits").fetchall() for v in row)
        assert username not in dump and INSIDE[0] not in dump
        # a window later (its buckets moved back two windows rather than waited for) the limit starts again
        db.execute(
            "UPDATE gis_ioc.rate_hits SET bucket = bucket - interval '120 seconds', "
            "expires_at = expires_at - interval '120 seconds' WHERE key = ANY(%s)",
            (keys,),
        )
        assert _login(one, username).status_code == 401
        assert _login(two, username).status_code == 401
    finally:
        _forget(db, keys)


def test_concurrent_attempts_in_two_processes_cannot_pass_the_limit(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any]
) -> None:
    limiters = [RateLimiter(c.app.state.pool, "test-race", limit=10) for c in workers]  # type: ignore[attr-defined]

    def attempt(i: int) -> bool:
        try:
            limiters[i % 2].check("one key")
        except TooManyRequests:
            return False
        return True

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(attempt, range(24)))
        assert results.count(True) == 10
    finally:
        _forget(db, [limiters[0].digest("one key")])


def test_expired_rows_are_pruned_and_the_table_stays_bounded(
    workers: tuple[TestClient, TestClient], db: psycopg.Connection[Any]
) -> None:
    pool = workers[0].app.state.pool  # type: ignore[attr-defined]
    limiter = RateLimiter(pool, "test-bounded", limit=3, prune_share=0.0, prune_batch=150)
    keys = [f"10.0.{i // 250}.{i % 250}|{i}-{'x' * 1000}" for i in range(200)]
    digests = [limiter.digest(k) for k in keys]
    try:
        for key in keys:
            limiter.check(key)
        assert scalar(db, "SELECT count(*) FROM gis_ioc.rate_hits WHERE key = ANY(%s)", (digests,)) == 200
        # the same key three times more is over the limit of 3, answered with when to try again
        for _ in range(2):
            limiter.check(keys[0])
        with pytest.raises(TooManyRequests, match="too many login attempts") as refused:
            limiter.check(keys[0])
        assert 1 <= refused.value.retry_after <= 60 + 60 // 3
        # two windows later every row has expired: checks that prune remove them a batch at a time
        db.execute(
            "UPDATE gis_ioc.rate_hits SET bucket = bucket - interval '5 minutes', "
            "expires_at = expires_at - interval '5 minutes' WHERE key = ANY(%s)",
            (digests,),
        )
        pruning = RateLimiter(pool, "test-bounded", limit=3, prune_share=1.0, prune_batch=150)
        pruning.check(keys[0])  # and it counts afresh: its old rows are past
        left = scalar(db, "SELECT count(*) FROM gis_ioc.rate_hits WHERE key = ANY(%s)", (digests,))
        assert left <= 200 - 150 + 1
        pruning.check(keys[1])
        assert scalar(db, "SELECT count(*) FROM gis_ioc.rate_hits WHERE key = ANY(%s)", (digests,)) == 2
        assert scalar(db, "SELECT count(*) FROM gis_ioc.rate_hits WHERE expires_at < now()") == 0
        assert limiter.prune() == 0
    finally:
        _forget(db, digests)


def test_retry_after_is_when_one_more_attempt_fits() -> None:
    # limit 10 a minute, 15 s into the window
    assert retry_after(10, 60, current=10, prev=0, elapsed=15.0) == 51  # full: its end, then 9 of 10 fade (6 s)
    assert retry_after(10, 60, current=0, prev=10, elapsed=0.0) == 6  # the last window's fade to 9
    assert retry_after(10, 60, current=5, prev=10, elapsed=15.0) == 21  # ceil(10 * (1 - t/60)) <= 4 at t = 36
    assert retry_after(10, 60, current=9, prev=10, elapsed=15.0) == 45  # room only once the last window is out
    assert retry_after(1, 60, current=1, prev=1, elapsed=59.5) == 61  # limit 1: a whole window more
    assert retry_after(10, 60, current=3, prev=0, elapsed=5.0) == 1


def test_lockout_counts_every_failure_taken_at_once_by_two_processes(
    workers: tuple[TestClient, TestClient], settings: Settings, db: psycopg.Connection[Any]
) -> None:
    one, two = workers
    username = "rate.lockout"
    create(db, username, ["analyst"])
    keys = _digests(one, username)
    try:
        with ThreadPoolExecutor(settings.auth_max_failed_logins) as pool:
            statuses = list(
                pool.map(
                    lambda i: _login((one, two)[i % 2], username).status_code, range(settings.auth_max_failed_logins)
                )
            )
        assert statuses == [401] * settings.auth_max_failed_logins
        row = db.execute(
            "SELECT failed_logins, locked_until > now() FROM gis_ioc.accounts WHERE username = %s", (username,)
        ).fetchone()
        assert row == (0, True)  # five failures counted, none lost: locked (and the count starts again)
        lockouts = scalar(
            db, "SELECT count(*) FROM gis_ioc.audit WHERE actor = %s AND action = 'auth.lockout'", (username,)
        )
        assert lockouts == 1
    finally:
        _forget(db, keys)
