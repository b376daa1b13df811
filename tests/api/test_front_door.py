"""The front door (gis_ioc/api/front.py): the Host allow-list, bounded headers and bodies (chunked too),
and health details for administrators only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from gis_ioc.auth import accounts, sessions
from tests.auth.conftest import REF, create


def test_a_forged_host_is_refused_before_anything_is_built(anonymous: TestClient) -> None:
    for path in ("/ogc/?f=html", "/ogc/collections?f=json", "/ogc/openapi?f=json", "/api/health", "/"):
        answer = anonymous.get(path, headers={"Host": "evil.example:8000"})
        assert answer.status_code == 400, path
        assert "Host" in answer.json()["detail"] and "evil.example" not in answer.text
    # and the pages answered afterwards to the right name carry no trace of it
    page = anonymous.get("/ogc/?f=html")
    assert page.status_code == 200 and "evil.example" not in page.text


def test_allowed_names_are_answered(anonymous: TestClient) -> None:
    for host in ("testserver", "127.0.0.1", "localhost"):
        assert anonymous.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_headers_are_bounded(anonymous: TestClient) -> None:
    long = anonymous.get("/healthz", headers={"X-Anything": "a" * 9000})
    assert long.status_code == 431 and "header" in long.json()["detail"]
    many = anonymous.get("/healthz", headers={f"X-H{i}": "b" * 4000 for i in range(10)})
    assert many.status_code == 431
    huge_user = anonymous.post("/api/auth/login", headers={"X-API-Key": "k" * 100_000})
    assert huge_user.status_code == 431


def _chunks(size: int, piece: int = 1024 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * min(piece, size - sent)
        sent += piece


def test_a_chunked_body_past_the_limit_is_cut_off(anonymous: TestClient) -> None:
    # no Content-Length: the body is counted as it arrives (GIS_IOC_MAX_REQUEST_MB, 16 MB by default)
    answer = anonymous.post(
        "/api/scenarios/health/run",
        content=_chunks(20 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert "larger than 16 MB" in answer.json()["detail"]
    declared = anonymous.post("/api/scenarios/health/run", headers={"Content-Length": str(17 * 2**20)})
    assert declared.status_code == 413
    small = anonymous.post(
        "/api/scenarios/health/run", content=_chunks(10), headers={"Content-Type": "application/json"}
    )
    assert small.status_code in (400, 422)  # within bounds: judged on its merits


def test_health_details_only_for_administrators(anonymous: TestClient, db: psycopg.Connection[Any]) -> None:
    public = anonymous.get("/api/health").json()
    assert public["status"] == "ok"
    assert "layers" not in public["database"] and "collections" not in public
    assert "police_posts" not in anonymous.get("/api/health").text
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    first = create(db, "front.admin", ["administrator"])
    sessions.change_password(db, "front.admin", first, "Một mật khẩu rất dài 2026!")
    key = accounts.issue_key(db, "front.admin", REF, "cli:test")
    detail = anonymous.get("/api/health", headers={"X-API-Key": key}).json()
    assert detail["database"]["layers"]["police_posts"] >= 0 and "collections" in detail


def test_security_headers_on_every_answer(anonymous: TestClient) -> None:
    for path in ("/healthz", "/ogc/collections?f=json", "/nothing-here", "/api/auth/session"):
        answer = anonymous.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    assert anonymous.get("/api/auth/session").headers["cache-control"] == "no-store"


def test_an_upload_is_refused_before_its_body_is_read(anonymous: TestClient, client: TestClient) -> None:
    # 32 MB that nobody may send: answered 401 / 403 at once, not stored first
    body = _chunks(32 * 1024 * 1024)
    refused = anonymous.post("/api/loads", content=body, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert refused.status_code == 401
    leader = client.post(
        "/api/loads", content=_chunks(32 * 1024 * 1024), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert leader.status_code == 403 and "load" in leader.json()["detail"]


def test_health_probes_do_not_count_rows_for_everyone(anonymous: TestClient) -> None:
    assert "layers" not in anonymous.get("/api/health").json()["database"]
    assert anonymous.get("/readyz").json() == {"status": "ready"}


def test_a_hidden_layer_answers_like_a_missing_one(anonymous: TestClient) -> None:
    for suffix in ("", "/items", "/items/1", "/queryables", "/tiles", "/tiles/WebMercatorQuad/12/1807/3254"):
        hidden = anonymous.get(f"/ogc/collections/police_posts{suffix}?f=json")
        missing = anonymous.get(f"/ogc/collections/no_such_layer{suffix}?f=json")
        assert hidden.status_code == missing.status_code == 404, suffix
        for header in ("cache-control", "vary", "content-type"):
            assert hidden.headers.get(header) == missing.headers.get(header), (suffix, header)
        assert hidden.text.replace("police_posts", "no_such_layer") == missing.text, suffix


def test_the_ogc_landing_page_answers_at_its_published_address_without_a_redirect(anonymous: TestClient) -> None:
    """`/ogc` and `/ogc?f=json` (the landing page's own self link) answer the landing page, query kept."""
    bare = anonymous.get("/ogc?f=json", follow_redirects=False)
    assert bare.status_code == 200 and bare.headers["content-type"].startswith("application/json")
    assert bare.json()["links"] == anonymous.get("/ogc/?f=json").json()["links"]
    html = anonymous.get("/ogc?f=html", follow_redirects=False)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
