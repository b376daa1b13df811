"""The access rule of every route of the application, in one table.

Every route the application answers (its own JSON API, the web map, the health probes and every OGC API
route under ``GIS_IOC_OGC_PATH``) has exactly one rule here. The suite's authorization matrix
(``tests/auth/test_route_matrix.py``) walks the application's route table, fails on any route without
a rule, and asks each route as every kind of caller, checking the answer against its rule. A new door
therefore cannot be added without saying who may use it.

Kinds of rule:

``public``
    anyone, also without an account (what is answered may still depend on who asks: e.g. the collections
    list shows only readable layers);
``login``
    any account (anonymous callers get 401);
``session``
    an account logged in with its password (a session): anonymous callers and API keys get 401;
``permission``
    accounts whose roles give the named permission (:data:`gis_ioc.query.viewer.PERMISSIONS`): others
    get 401 (anonymous) or 403; ``scenario`` is also open to anonymous callers, who see totals only;
``admin``
    administrators with a second factor (``accounts`` or ``audit`` permission);
``layer``
    readable layers only (:meth:`Viewer.can_read`): any other layer answers 404 as if it did not exist;
``owned``
    things made by an account (runs, jobs, exports): their owner, those they are shared with, and
    administrators; everyone else gets 404 (and lists show only one's own). With a permission: only
    accounts that also have it (others 401/403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["public", "login", "session", "permission", "admin", "layer", "owned"]


@dataclass(frozen=True)
class Rule:
    kind: Kind
    permission: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.permission}" if self.permission else self.kind


PUBLIC = Rule("public")
LOGIN = Rule("login")
SESSION = Rule("session")
LAYER = Rule("layer")
OWNED = Rule("owned")


def permission(name: str) -> Rule:
    return Rule("permission", name)


def admin(name: str) -> Rule:
    return Rule("admin", name)


#: (method, path) → rule. ``{ogc}`` stands for the OGC API's base path (``GIS_IOC_OGC_PATH``).
RULES: dict[tuple[str, str], Rule] = {
    # documentation and probes
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/api/health"): PUBLIC,  # the database's detail only for administrators
    ("GET", "/static"): PUBLIC,
    # logging in
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/logout"): PUBLIC,
    ("GET", "/api/auth/session"): PUBLIC,  # says whether one is logged in
    ("GET", "/api/auth/me"): LOGIN,
    ("POST", "/api/auth/password"): SESSION,
    ("POST", "/api/auth/totp"): SESSION,
    ("POST", "/api/auth/totp/confirm"): SESSION,
    # administration
    ("GET", "/api/admin/accounts"): admin("accounts"),
    ("POST", "/api/admin/accounts"): admin("accounts"),
    ("POST", "/api/admin/accounts/{username}/{action}"): admin("accounts"),
    ("GET", "/api/admin/audit"): admin("audit"),
    ("GET", "/api/admin/audit/verify"): admin("audit"),
    # scenarios
    ("GET", "/api/scenarios"): PUBLIC,
    ("POST", "/api/scenarios/{scenario_id}/run"): permission("scenario"),
    ("GET", "/api/scenarios/runs/{run_id}"): OWNED,
    ("POST", "/api/scenarios/runs/{run_id}/rerun"): OWNED,
    ("PUT", "/api/scenarios/runs/{run_id}/shared_with"): OWNED,
    ("GET", "/api/emergency"): PUBLIC,
    ("POST", "/api/emergency/run"): permission("scenario"),
    # loads and planning drawings
    ("POST", "/api/loads"): permission("load"),
    ("GET", "/api/loads"): permission("load|approve"),
    ("GET", "/api/loads/{load_id}"): permission("load|approve"),
    ("POST", "/api/loads/{load_id}/approve"): permission("approve"),
    ("POST", "/api/loads/{load_id}/rollback"): permission("load|approve"),
    ("GET", "/api/plans"): PUBLIC,  # approved drawings; drafts only to those who load or approve
    ("GET", "/api/plans/{plan_id}"): PUBLIC,
    ("GET", "/api/plans/{plan_id}/tiles/{z}/{x}/{y}.png"): PUBLIC,
    ("GET", "/api/plans/{plan_id}/cog.tif"): PUBLIC,
    ("GET", "/api/plans/{plan_id}/documents/{doc_id}"): PUBLIC,
    # the web map
    ("GET", "/"): PUBLIC,
    ("GET", "/api/map/config"): PUBLIC,  # lists only the layers the caller may read
    ("GET", "/api/overview"): LOGIN,  # the leaders' first screen: every sector over the province
    ("GET", "/api/communes"): PUBLIC,
    ("GET", "/api/communes/{code}"): PUBLIC,
    ("GET", "/api/identify"): PUBLIC,  # internal layers only as the caller may read them
    ("GET", "/api/qgis-project"): LOGIN,  # the layers the caller may read
    # exports, maps, reports
    ("GET", "/api/exports/layers/{layer_id}"): permission("export"),
    ("GET", "/api/exports/runs/{run_id}"): Rule("owned", "export"),
    ("POST", "/api/exports"): permission("export"),
    ("GET", "/api/exports/jobs/{job_id}"): OWNED,
    ("GET", "/api/exports/jobs/{job_id}/file"): OWNED,
    ("DELETE", "/api/exports/jobs/{job_id}"): OWNED,  # the job system's: exports, and async maps and reports
    ("GET", "/api/maps/{indicator}"): permission("map"),
    ("GET", "/api/reports"): permission("report"),
    # citizen reports (issue 15): Open311 and the public doors for everyone (no personal data); the
    # handling units' doors for the units' staff and those who oversee them (leaders, administrators):
    # others get 401/403, and a report of a unit they do not handle answers 404 (gis_ioc/feedback/access.py)
    ("GET", "/open311/v2/services.json"): PUBLIC,
    ("POST", "/open311/v2/requests.json"): PUBLIC,  # rate-limited per address and per phone
    ("GET", "/open311/v2/requests.json"): PUBLIC,
    ("GET", "/open311/v2/requests/{service_request_id}.json"): PUBLIC,
    ("GET", "/api/feedback/photos/{photo_id}.jpg"): PUBLIC,
    ("GET", "/api/feedback/map"): PUBLIC,
    ("GET", "/api/feedback/indicators"): PUBLIC,  # counts per commune
    ("GET", "/phan-anh"): PUBLIC,  # the citizens' report page
    ("POST", "/api/feedback/reports/{report_id}/rating"): PUBLIC,  # the reporter, with the intake token
    ("GET", "/api/feedback/queue"): OWNED,
    ("GET", "/api/feedback/reports/{report_id}"): OWNED,
    ("POST", "/api/feedback/reports/{report_id}/transition"): OWNED,
    ("POST", "/api/feedback/reports/{report_id}/answers"): OWNED,
    ("POST", "/api/feedback/reports/{report_id}/merge"): OWNED,
    ("POST", "/api/feedback/escalate"): OWNED,  # leaders and administrators
    # sensors (issue 14): devices push with their own credential (X-Device-Key), never an account's
    ("POST", "/api/iot/devices/{device_code}/senml"): PUBLIC,
    # live sensors (issue 14): answers come from the access core (iot_devices is internal): no station,
    # alert or datastream for callers who may not read the devices (404 for one datastream)
    ("GET", "/api/iot/stations"): PUBLIC,
    ("GET", "/api/iot/stream"): PUBLIC,
    ("GET", "/api/iot/alerts"): PUBLIC,
    ("POST", "/api/iot/alerts/{alert_id}/acknowledge"): permission("map"),  # the centre's operators
    ("GET", "/api/iot/v1.1/Datastreams"): PUBLIC,
    ("GET", "/api/iot/v1.1/Datastreams({datastream_id})"): PUBLIC,
    ("GET", "/api/iot/v1.1/Datastreams({datastream_id})/Observations"): PUBLIC,
    # the OGC API
    ("GET", "{ogc}/"): PUBLIC,
    ("GET", "{ogc}/openapi"): PUBLIC,
    ("GET", "{ogc}/static"): PUBLIC,
    ("GET", "{ogc}/conformance"): PUBLIC,
    ("GET", "{ogc}/collections"): PUBLIC,  # lists only readable layers
    ("GET", "{ogc}/collections/{collection_id}"): LAYER,
    ("GET", "{ogc}/tileMatrixSets"): PUBLIC,
    ("GET", "{ogc}/tileMatrixSets/{tms}"): PUBLIC,
    ("GET", "{ogc}/collections/{collection_id}/tiles"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/tiles/{tms}"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/tiles/{tms}/{z}/{row}/{col}"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/queryables"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/styles"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/styles/{style_id}"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/schema"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/items"): LAYER,
    ("POST", "{ogc}/collections/{collection_id}/items"): LAYER,  # a GeoJSON feature: the load rule (Part 4)
    ("GET", "{ogc}/collections/{collection_id}/items/{item_id}"): LAYER,
    ("PUT", "{ogc}/collections/{collection_id}/items/{item_id}"): permission("load"),  # and the layer's grant
    ("PATCH", "{ogc}/collections/{collection_id}/items/{item_id}"): permission("load"),
    ("DELETE", "{ogc}/collections/{collection_id}/items/{item_id}"): permission("load"),
    ("GET", "{ogc}/collections/{collection_id}/items/{item_id}/history"): LAYER,
    # OGC API EDR over the sensor observations (gis_ioc.publish.edr; 400 on a collection without EDR)
    ("GET", "{ogc}/collections/{collection_id}/position"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/radius"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/area"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/locations"): LAYER,
    ("GET", "{ogc}/collections/{collection_id}/locations/{location_id}"): LAYER,
    ("GET", "{ogc}/processes"): PUBLIC,
    ("GET", "{ogc}/processes/{process_id}"): PUBLIC,
    ("POST", "{ogc}/processes/{process_id}/execution"): permission("scenario"),
    ("GET", "{ogc}/jobs"): OWNED,  # lists only the caller's jobs
    ("GET", "{ogc}/jobs/{job_id}"): OWNED,
    ("DELETE", "{ogc}/jobs/{job_id}"): OWNED,
    ("GET", "{ogc}/jobs/{job_id}/results"): OWNED,
}


def rule_for(method: str, path: str, ogc_path: str) -> Rule | None:
    """The rule of a route (``path`` as the route table spells it), or None when it has none."""
    if path.startswith(ogc_path):
        path = "{ogc}" + path[len(ogc_path) :]
    return RULES.get((method, path))
