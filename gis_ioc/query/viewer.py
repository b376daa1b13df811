"""Who asks: the one description of a caller that every door resolves once and passes down.

A :class:`Viewer` is made from the request's credentials (or stands for the console operator or an
anonymous caller) and answers every access question the project has, in one place:

- ``public`` layers: everyone, also without an account;
- ``internal`` layers: administrators, GIS officers, approvers, leaders and analysts; commune officers
  only their own communes' rows (layers coded by commune); external clients only layers granted to them;
- ``restricted`` layers: only accounts the layer is granted to, whatever their role;
- personal fields (``personal: true`` in the catalog) and personal aggregates below the privacy threshold:
  only accounts holding the ``personal_data`` grant;
- officials' contacts (names, phone numbers, e-mails): only roles that direct work (leaders, administrators);
- per-commune detail of scenario results: roles that read every internal layer see every commune; commune
  officers their own communes and totals; anonymous callers and external clients totals only. No viewer
  sees more than a more privileged one (the policy is monotonic; tested).
- things made by an account (scenario runs, jobs, exports and their files) belong to it; others see them
  only when they are shared with them explicitly, or when they are administrators.

Domain code takes a Viewer as an argument and never reads request context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from gis_ioc.catalog.models import Layer

if TYPE_CHECKING:
    from gis_ioc.auth.sessions import Principal

PERSONAL_DATA = "personal_data"

#: Roles that read every internal layer (commune officers read their own communes' rows only).
READS_INTERNAL: frozenset[str] = frozenset({"administrator", "gis_officer", "approver", "leader", "analyst"})
#: Roles that direct work and may see officials' contacts (emergency call lists).
DIRECTS_WORK: frozenset[str] = frozenset({"administrator", "leader"})

#: What else a role may do.
#: ``map``: thematic maps of every commune; ``report``: meeting reports (commune officers on their own
#: communes only).
PERMISSIONS: dict[str, frozenset[str]] = {
    "administrator": frozenset({"accounts", "audit", "load", "approve", "export", "scenario", "map", "report"}),
    "gis_officer": frozenset({"load", "export", "scenario", "map", "report"}),
    "approver": frozenset({"approve", "scenario", "map", "report"}),
    "leader": frozenset({"scenario", "export", "map", "report"}),
    "analyst": frozenset({"scenario", "export", "map", "report"}),
    "commune_officer": frozenset({"scenario", "export", "report"}),
    "external": frozenset(),
}
#: What a caller without an account may do: run scenarios (totals only, personal figures suppressed).
#: Every account may do it too (no one may do less than an anonymous caller).
ANONYMOUS_PERMISSIONS: frozenset[str] = frozenset({"scenario"})


@dataclass(frozen=True)
class Viewer:
    """Who asks. ``username`` None is an anonymous caller."""

    username: str | None = None
    roles: frozenset[str] = frozenset()
    communes: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    second_factor: bool = False
    must_change_password: bool = False
    via: str = "anonymous"  # anonymous | session | api_key | oidc | console
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    ANONYMOUS: ClassVar[Viewer]

    # ----------------------------------------------------------------- making one
    @classmethod
    def of(cls, principal: Principal | None) -> Viewer:
        """The viewer of an authenticated principal (None: anonymous)."""
        if principal is None:
            return cls.ANONYMOUS
        return cls(
            username=principal.username,
            roles=frozenset(principal.roles),
            communes=frozenset(principal.communes),
            grants=frozenset(principal.grants),
            second_factor=principal.second_factor,
            must_change_password=principal.must_change_password,
            via=principal.via,
        )

    @classmethod
    def console(cls, name: str = "console", *, personal: bool = False) -> Viewer:
        """The operator at the server's console (``gis-ioc`` commands): every layer and permission;
        personal data only when asked for (``--show-personal``)."""
        return cls(
            username=f"cli:{name}" if not name.startswith("cli:") else name,
            roles=frozenset({"administrator"}),
            grants=frozenset({PERSONAL_DATA, "*"}) if personal else frozenset({"*"}),
            second_factor=True,
            via="console",
        )

    # ----------------------------------------------------------------- who
    @property
    def anonymous(self) -> bool:
        return self.username is None

    @property
    def name(self) -> str:
        """The name the audit trail records."""
        return self.username or "anonymous"

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.roles

    @property
    def reads_internal(self) -> bool:
        return bool(self.roles & READS_INTERNAL)

    @property
    def personal(self) -> bool:
        """May this viewer see personal data (personal fields, small personal aggregates)?"""
        return PERSONAL_DATA in self.grants

    @property
    def sees_contacts(self) -> bool:
        """May this viewer see officials' names, phone numbers and e-mails (emergency call lists)?"""
        return bool(self.roles & DIRECTS_WORK)

    def granted(self, layer_id: str) -> bool:
        return layer_id in self.grants or "*" in self.grants

    # ----------------------------------------------------------------- layers and rows
    def can_read(self, layer: Layer) -> bool:
        """May this viewer read the layer at all?"""
        if self.granted(layer.id):
            return True
        if layer.access == "public":
            return True
        if self.anonymous or layer.access == "restricted":
            return False
        if self.reads_internal:
            return True
        return "commune_officer" in self.roles and layer.field("commune_code") is not None

    def readable(self, layers: list[Layer]) -> list[Layer]:
        return [layer for layer in layers if self.can_read(layer)]

    def row_communes(self, layer: Layer) -> frozenset[str] | None:
        """The communes whose rows this viewer may read in the layer (None: every row). Only commune
        officers are limited, and only on non-public layers they hold no grant for."""
        if layer.access == "public" or self.reads_internal or self.granted(layer.id):
            return None
        if "commune_officer" in self.roles and layer.field("commune_code") is not None:
            return self.communes
        return None

    def sees(self, layer: Layer) -> Layer:
        """The layer as this viewer may see it: personal fields removed unless personal data is granted."""
        if self.personal or not any(f.personal for f in layer.fields):
            return layer
        return _without_personal(layer)

    def view_class(self, layer: Layer) -> tuple[frozenset[str] | None, tuple[str, ...]]:
        """What of ``layer`` this viewer's answers depend on: the communes its rows are limited to (None:
        every row) and the fields it sees. Two viewers of one class get the same rows and fields, so a
        cache may share an answer between them (and never between classes)."""
        return self.row_communes(layer), tuple(f.name for f in self.sees(layer).fields)

    # ----------------------------------------------------------------- actions
    def may(self, permission: str) -> bool:
        """May the viewer load, approve, export, run scenarios, manage accounts or read the audit?"""
        if permission in ANONYMOUS_PERMISSIONS:
            return True
        if self.anonymous:
            return False
        return any(permission in PERMISSIONS.get(role, frozenset()) for role in self.roles)

    def may_load(self, layer: Layer) -> bool:
        """Loading into a layer needs the load permission, and the layer's grant when it is restricted."""
        return self.may("load") and (layer.access != "restricted" or self.granted(layer.id))

    # ----------------------------------------------------------------- aggregates
    def detail_communes(self) -> frozenset[str] | None:
        """The communes whose detail this viewer sees in aggregates (None: all; empty: totals only)."""
        if self.reads_internal:
            return None
        if "commune_officer" in self.roles:
            return self.communes
        return frozenset()

    # ----------------------------------------------------------------- owned things
    def owns(self, owner: str | None) -> bool:
        """Is a run, job or export made by ``owner`` this viewer's? Administrators see every one; the
        console too. Things made without an account (owner None) belong to nobody: only those see them."""
        if self.is_admin:
            return True
        return owner is not None and owner == self.username

    def may_see_owned(self, owner: str | None, shared_with: Iterable[str] = ()) -> bool:
        """May this viewer see a thing made by ``owner`` and shared with the named accounts (or ``*``,
        every account, or ``public``, everyone)?"""
        if self.owns(owner):
            return True
        shared = set(shared_with)
        if "public" in shared:
            return True
        if self.anonymous:
            return False
        return "*" in shared or self.username in shared

    # ----------------------------------------------------------------- a total order for tests
    def rank(self) -> int:
        """How much this viewer sees, for the monotonicity test: anonymous < external < commune officer <
        roles that read internal layers (< with personal data)."""
        if self.anonymous:
            return 0
        if self.reads_internal:
            return 3 + self.personal
        if "commune_officer" in self.roles:
            return 2
        return 1


Viewer.ANONYMOUS = Viewer()


@lru_cache(maxsize=256)
def _without_personal(layer: Layer) -> Layer:
    return layer.model_copy(update={"fields": tuple(f for f in layer.fields if not f.personal)})
