from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest

from gis_ioc.auth import accounts
from gis_ioc.auth.accounts import RequestRef
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoResult
from gis_ioc.settings import Settings

REF = RequestRef("123/VP-TTHN", date(2026, 11, 20), "Văn phòng UBND tỉnh")


@pytest.fixture(scope="module")
def conn(settings: Settings, loaded: DemoResult) -> Iterator[psycopg.Connection[Any]]:
    with connect(settings, autocommit=True) as c:
        yield c


def create(conn: psycopg.Connection[Any], username: str, roles: list[str], **extra: Any) -> str:
    """A new account on the suite's standing request; returns its one-time password."""
    _, password = accounts.create_account(
        conn,
        username=username,
        full_name=extra.pop("full_name", "Nguyễn Văn A"),
        agency=extra.pop("agency", "Sở Tài chính"),
        roles=roles,
        ref=REF,
        actor="cli:test",
        **extra,
    )
    return password
