from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gis_ioc.api.feedback import Limits
from gis_ioc.app import create_app
from gis_ioc.auth.ratelimit import RateLimiter
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings
from tests.conftest import key_account, scalar

CITIZEN = ("10.15.0.7", 40000)
PHONES = itertools.count(912000001)  # each report from another phone (5 a day per phone)


@dataclass(frozen=True)
class Place:
    """A point inside a commune (on its polygon), and the commune."""

    code: str
    name: str
    lon: float
    lat: float


@pytest.fixture(scope="session")
def fb(settings: Settings, loaded: DemoResult) -> Iterator[TestClient]:
    """The application asked without credentials, from a citizen's address."""
    app = create_app(settings)
    # one address sends every report of the suite: its hourly limit raised (tested on its own elsewhere)
    app.state.feedback_limits = Limits(
        RateLimiter(app.state.pool, "feedback-address", 1000, 3600),
        RateLimiter(app.state.pool, "feedback-phone", settings.feedback_per_phone_per_day, 86400),
    )
    with TestClient(app, client=CITIZEN) as c:
        yield c


@pytest.fixture(scope="session")
def places(settings: Settings, loaded: DemoResult) -> list[Place]:
    """Three communes and a point inside each (ST_PointOnSurface of the current polygons)."""
    with connect(settings) as conn:
        rows = conn.execute(
            """SELECT code, name, ST_X(p), ST_Y(p) FROM (
                   SELECT code, name, ST_PointOnSurface(geom) AS p FROM layers.communes WHERE valid_to IS NULL
                   ORDER BY code LIMIT 3) s"""
        ).fetchall()
    return [Place(str(c), str(n), float(x), float(y)) for c, n, x, y in rows]


@dataclass(frozen=True)
class Staff:
    officer: dict[str, str]  # commune officer of places[0], with personal data
    officer_plain: dict[str, str]  # commune officer of places[0], without personal data
    other_officer: dict[str, str]  # commune officer of places[1]
    department: dict[str, str]  # Sở Xây dựng's staff (grant feedback:so_xay_dung), with personal data
    leader: dict[str, str]  # oversees every unit, no personal data
    leader_personal: dict[str, str]  # oversees every unit, with personal data (still not a unit's staff)
    analyst: dict[str, str]  # handles nothing


@pytest.fixture(scope="session")
def staff(settings: Settings, loaded: DemoResult, places: list[Place]) -> Staff:
    with connect(settings, autocommit=True) as conn:

        def key(name: str, roles: list[str], **extra: Any) -> dict[str, str]:
            return {"X-API-Key": key_account(conn, name, roles, **extra)}

        return Staff(
            officer=key("fb.officer", ["commune_officer"], communes=[places[0].code], grants=["personal_data"]),
            officer_plain=key("fb.officer2", ["commune_officer"], communes=[places[0].code]),
            other_officer=key("fb.other", ["commune_officer"], communes=[places[1].code], grants=["personal_data"]),
            department=key("fb.sxd", ["external"], grants=["feedback:so_xay_dung", "personal_data"]),
            leader=key("fb.leader", ["leader"]),
            leader_personal=key("fb.leader2", ["leader"], grants=["personal_data"]),
            analyst=key("fb.analyst", ["analyst"]),
        )


def report(
    client: TestClient, place: Place, category: str = "duong_hu_hong", *, json: bool = False, **fields: Any
) -> dict[str, Any]:
    """Send a report (form-encoded, as Open311 clients do, or JSON); returns the intake answer."""
    body = {
        "service_code": category,
        "lat": f"{place.lat:.7f}",
        "long": f"{place.lon:.7f}",
        "description": "Ổ gà lớn giữa đường, xe máy dễ ngã",
        "first_name": "Nguyễn",
        "last_name": "Thị Hoa",
        "phone": f"0{next(PHONES)}",
        "email": "hoa.nguyen@example.vn",
        **fields,
    }
    answer = (
        client.post("/open311/v2/requests.json", json=body)
        if json
        else client.post("/open311/v2/requests.json", data=body)
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json()[0])


def one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    return scalar(conn, query, params)
