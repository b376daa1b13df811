"""The access rule, role by role and level by level (the doors that ask it come with issue 7's enforcement)."""

from __future__ import annotations

import pytest

from gis_ioc.auth import access
from gis_ioc.auth.sessions import Principal
from gis_ioc.catalog import Catalog


def _p(*roles: str, communes: tuple[str, ...] = (), grants: tuple[str, ...] = ()) -> Principal:
    return Principal("u", frozenset(roles), frozenset(communes), frozenset(grants))


@pytest.mark.parametrize(
    ("who", "public", "internal", "restricted"),
    [
        (None, True, False, False),
        (_p("administrator"), True, True, False),
        (_p("gis_officer"), True, True, False),
        (_p("approver"), True, True, False),
        (_p("leader"), True, True, False),
        (_p("analyst"), True, True, False),
        (_p("commune_officer", communes=("11953",)), True, True, False),
        (_p("external"), True, False, False),
        (_p("external", grants=("buildings",)), True, True, False),
        (_p("analyst", grants=("police_posts",)), True, True, True),
    ],
)
def test_layer_access_matrix(
    catalog: Catalog, who: Principal | None, public: bool, internal: bool, restricted: bool
) -> None:
    layers = catalog.layers
    assert layers["schools"].access == "public" and access.can_read(who, layers["schools"]) is public
    assert layers["buildings"].access == "internal" and access.can_read(who, layers["buildings"]) is internal
    assert layers["police_posts"].access == "restricted" and access.can_read(who, layers["police_posts"]) is restricted


def test_commune_officers_see_their_communes_only(catalog: Catalog) -> None:
    officer = _p("commune_officer", communes=("11953", "11977"))
    assert access.row_communes(officer, catalog.layers["buildings"]) == {"11953", "11977"}
    assert access.row_communes(_p("leader"), catalog.layers["buildings"]) is None
    assert access.may(officer, "export") and not access.may(officer, "load") and not access.may(None, "export")
    assert access.may(_p("approver"), "approve") and not access.may(_p("gis_officer"), "approve")
    assert access.personal_access(_p("leader", grants=(access.PERSONAL_DATA,)))
    assert not access.personal_access(_p("administrator"))
