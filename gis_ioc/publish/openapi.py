"""A self-contained OpenAPI document for the OGC API.

pygeoapi's generated document points at schemas on schemas.opengis.net and GitHub. An IOC runs on a
closed government network where those addresses cannot be reached, and clients (and test tools)
must resolve every reference, so gis_ioc replaces each external reference with a local component
and adds the paths its own handlers serve (vector tiles, POST filters). Each viewer gets the document cut down
to the collections it may see (:func:`for_collections`).
"""

from __future__ import annotations

from typing import Any

from gis_ioc.crs import CRS84_URI, PUBLISHED_URIS

_LINK = {
    "type": "object",
    "required": ["href"],
    "properties": {
        "href": {"type": "string"},
        "rel": {"type": "string"},
        "type": {"type": "string"},
        "title": {"type": "string"},
        "hreflang": {"type": "string"},
    },
}
_PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "description": {"type": "string"},
    },
}
_OBJECT = {"type": "object"}


def _json_response(description: str, schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


COMPONENTS: dict[str, dict[str, Any]] = {
    "parameters": {
        "datetime": {
            "name": "datetime",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": (
                "RFC 3339 instant or interval (a/b, ../b, a/..) against the collection's time (its temporal "
                "extent): a layer whose queryables name a primary-instant field is filtered on that field; "
                "versioned boundary layers answer with the versions valid then; every other layer answers "
                "from its history, the features as they stood at that instant (every state published during "
                "an interval). A malformed value is a 400"
            ),
            "schema": {"type": "string"},
        },
        "filter": {
            "name": "filter",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "a CQL2 filter on the queryables (OGC API Features Part 3), in the language of filter-lang",
            "schema": {"type": "string"},
        },
        "filter-lang": {
            "name": "filter-lang",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "the language of filter: cql2-text (default) or cql2-json",
            "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
        },
        "filter-crs": {
            "name": "filter-crs",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "the CRS of the geometries in filter (default CRS84)",
            "schema": {"type": "string", "format": "uri", "enum": list(PUBLISHED_URIS), "default": CRS84_URI},
        },
        "featureId": {
            "name": "featureId",
            "in": "path",
            "required": True,
            "description": "feature id (fid)",
            "schema": {"type": "string"},
        },
        "sortby": {
            "name": "sortby",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "comma-separated properties, - for descending",
            "schema": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        },
    },
    "responses": {
        "LandingPage": _json_response("The landing page", _OBJECT),
        "Collection": _json_response("A collection", _OBJECT),
        "Features": _json_response("A page of features", _OBJECT, "application/geo+json"),
        "Feature": _json_response("A feature", _OBJECT, "application/geo+json"),
        "InvalidParameter": _json_response("A query parameter is malformed", _PROBLEM, "application/problem+json"),
        "NotFound": _json_response("Not found", _PROBLEM, "application/problem+json"),
        "ServerError": _json_response("Server error", _PROBLEM, "application/problem+json"),
    },
    "schemas": {"link": _LINK, "exception": _PROBLEM, "cql2": _OBJECT},
}


def _query_parameter(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "style": "form",
        "explode": False,
        "description": description,
        "schema": schema,
    }


#: OGC API EDR's parameters as gis_ioc answers them (:mod:`gis_ioc.publish.edr`).
COMPONENTS["parameters"].update(
    {
        "edr-positionCoords": _query_parameter(
            "coords", "WKT POINT(lon lat), CRS84: the station nearest it within 1 km", {"type": "string"}, True
        ),
        "edr-radiusCoords": _query_parameter(
            "coords", "WKT POINT(lon lat), CRS84: the centre of the circle", {"type": "string"}, True
        ),
        "edr-areaCoords": _query_parameter(
            "coords", "WKT POLYGON or MULTIPOLYGON, CRS84: the stations inside it", {"type": "string"}, True
        ),
        "edr-within": _query_parameter(
            "within", "radius of the circle (0 or more)", {"type": "number", "minimum": 0}, True
        ),
        "edr-within-units": _query_parameter(
            "within-units",
            "unit of within (km when left out)",
            {"type": "string", "enum": ["km", "m"], "default": "km"},
        ),
        "edr-parameter-name": _query_parameter(
            "parameter-name",
            "comma-separated observed properties (pm25, pm10, no2, o3, co, so2, water_level, rain, temperature, "
            "humidity); all when left out",
            {"type": "string"},
        ),
        "edr-datetime": _query_parameter(
            "datetime",
            "RFC 3339 instant, date (a Vietnamese calendar day) or interval a/b with open ends (..); the last "
            "24 hours when left out. At most 50,000 readings per answer (else 400)",
            {"type": "string"},
        ),
        "edr-z": _query_parameter("z", "not offered: the observations are 2-D (a 400 when given)", {"type": "string"}),
        "edr-locationId": {
            "name": "locId",
            "in": "path",
            "required": True,
            "description": "a station's device code",
            "schema": {"type": "string"},
        },
        "edr-bbox": _query_parameter(
            "bbox", "min lon, min lat, max lon, max lat (CRS84)", {"type": "array", "items": {"type": "number"}}
        ),
    }
)
COMPONENTS["schemas"]["coverageJSON"] = {
    "type": "object",
    "description": "CoverageJSON: a CoverageCollection of PointSeries coverages, one per station",
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "parameters": _OBJECT, "coverages": {"type": "array"}},
}

_EXTERNAL = {
    "edr/1.0/openapi/parameters/positionCoords.yaml": ("parameters", "edr-positionCoords"),
    "edr/1.0/openapi/parameters/radiusCoords.yaml": ("parameters", "edr-radiusCoords"),
    "edr/1.0/openapi/parameters/areaCoords.yaml": ("parameters", "edr-areaCoords"),
    "edr/1.0/openapi/parameters/parameter-name.yaml": ("parameters", "edr-parameter-name"),
    "edr/1.0/openapi/parameters/z.yaml": ("parameters", "edr-z"),
    "edr/1.0/openapi/parameters/locationId.yaml": ("parameters", "edr-locationId"),
    "edr/1.0/openapi/parameters/bbox.yaml": ("parameters", "edr-bbox"),
    "edr/1.0/openapi/schemas/coverageJSON.yaml": ("schemas", "coverageJSON"),
    "sortby.yaml": ("parameters", "sortby"),
    "cql2.json": ("schemas", "cql2"),
    "exception.yaml": ("schemas", "exception"),
}


def _local(ref: str) -> str | None:
    """The local component that stands for an external reference, or None to keep it."""
    if not ref.startswith("http"):
        return None
    if "#/components/" in ref:
        kind, name = ref.split("#/components/", 1)[1].split("/", 1)
        if name in COMPONENTS.get(kind, {}):
            return f"#/components/{kind}/{name}"
    for suffix, (kind, name) in _EXTERNAL.items():
        if ref.endswith(suffix):
            return f"#/components/{kind}/{name}"
    return "#/components/schemas/cql2"  # any other external schema: a plain object


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            local = _local(node["$ref"])
            if local is not None:
                return {**node, "$ref": local}
        return {k: _walk(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v) for v in node]
    return node


def _tile_paths(collections: list[str]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    tile_params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
        for n in ("tileMatrix", "tileRow", "tileCol")
    ]
    for cid in collections:
        paths[f"/collections/{cid}/tiles"] = {
            "get": {
                "summary": f"Vector tilesets of {cid}",
                "tags": [cid],
                "operationId": f"getTilesets{cid}",
                "responses": {"200": {"$ref": "#/components/responses/Collection"}},
            }
        }
        paths[f"/collections/{cid}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"] = {
            "get": {
                "summary": f"A vector tile of {cid}",
                "tags": [cid],
                "operationId": f"getTile{cid}",
                "parameters": tile_params,
                "responses": {
                    "200": {
                        "description": "A Mapbox Vector Tile",
                        "content": {
                            "application/vnd.mapbox-vector-tile": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "204": {"description": "No features in this tile"},
                    "400": {"$ref": "#/components/responses/InvalidParameter"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                },
            }
        }
    return paths


def self_contained(doc: dict[str, Any], collections: list[str]) -> dict[str, Any]:
    """pygeoapi's document with every external reference made local, plus gis_ioc's tile paths, and the
    items' ``limit`` as the shared component ``#/components/parameters/limit`` (:func:`_shared_limit`)."""
    out: dict[str, Any] = _walk(doc)
    components = out.setdefault("components", {})
    for kind, items in COMPONENTS.items():
        components.setdefault(kind, {}).update(items)
    out.setdefault("paths", {}).update(_tile_paths(collections))
    _shared_limit(out)
    _items_parameters(out, collections)
    _edit_operations(out, collections)
    _edr_operations(out)
    _as_served(out)
    return out


_EDR_QUERIES = ("/position", "/radius", "/area", "/locations", "/locations/{locId}")


def _edr_operations(doc: dict[str, Any]) -> None:
    """The EDR queries' parameters as gis_ioc reads them: ``within`` and ``within-units`` for radius, the
    observations' ``datetime``, and the problems they answer."""
    for path, item in doc.get("paths", {}).items():
        if not (path.startswith("/collections/") and path.endswith(_EDR_QUERIES)):
            continue
        operation = item.get("get", {})
        parameters = [
            {"$ref": "#/components/parameters/edr-datetime"} if p == {"$ref": "#/components/parameters/datetime"} else p
            for p in operation.get("parameters", [])
        ]
        if path.endswith("/radius"):
            parameters[1:1] = [
                {"$ref": "#/components/parameters/edr-within"},
                {"$ref": "#/components/parameters/edr-within-units"},
            ]
        operation["parameters"] = parameters
        responses = operation.setdefault("responses", {})
        responses.setdefault("400", {"$ref": "#/components/responses/InvalidParameter"})
        responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})


def _problem(description: str) -> dict[str, Any]:
    return _json_response(description, {"type": "object"}, "application/problem+json")


def _not_found() -> dict[str, Any]:
    """gis_ioc's 404 (problem+json), or the router's plain JSON one for an address no route matches."""
    answer = _problem("No such collection or feature")
    answer["content"]["application/json"] = {"schema": {"type": "object"}}
    return answer


def _edit_operations(doc: dict[str, Any], collections: list[str]) -> None:
    """OGC API Features Part 4 (create, replace, update, delete as draft change sets; gis_ioc.publish.edits)
    and each feature's history."""
    feature = {"$ref": "#/components/schemas/EditedFeature"}
    doc["components"].setdefault("schemas", {})["EditedFeature"] = {
        "type": "object",
        "description": "A GeoJSON Feature (CRS84 unless Content-Crs names a projected CRS the collection offers)",
        "required": ["type", "geometry"],
        "properties": {"type": {"enum": ["Feature"]}, "geometry": {"type": "object"}, "properties": {"type": "object"}},
    }
    change = _json_response(
        "The draft change set (changeSet: the load to approve with POST /api/loads/{id}/approve)", {"type": "object"}
    )
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": True,
        "description": "The ETag of the feature as read (412 when it has changed since; 428 when missing)",
        "schema": {"type": "string"},
    }
    content_crs = {"name": "Content-Crs", "in": "header", "required": False, "schema": {"type": "string"}}
    refusals = {
        "400": _problem("The edit breaks a quality gate (named, with the loader's report); nothing written"),
        "401": _problem("Not logged in"),
        "403": _problem("Not allowed to load into this layer"),
        "404": _not_found(),
    }
    for cid in collections:
        items = doc["paths"].get(f"/collections/{cid}/items")
        one = doc["paths"].get(f"/collections/{cid}/items/{{featureId}}")
        if items is None or one is None:
            continue
        tags = items.get("get", {}).get("tags", [cid])
        fid = {"$ref": "#/parameters/featureId"}
        for p in one.get("get", {}).get("parameters", []):
            if isinstance(p, dict) and (p.get("name") == "featureId" or "featureId" in p.get("$ref", "")):
                fid = p
        post = items.setdefault(
            "post",
            {"operationId": f"create{cid}Feature", "tags": tags, "responses": {}, "requestBody": {"content": {}}},
        )  # pygeoapi's: a cql2-json filter in the body; a GeoJSON feature creates (the media type tells)
        post["summary"] = f"Features of {cid} by a cql2-json filter, or create one (a draft change set)"
        post.setdefault("requestBody", {}).setdefault("content", {})["application/geo+json"] = {"schema": feature}
        post.setdefault("parameters", []).append(content_crs)
        post.setdefault("responses", {}).update({"201": change, **refusals})
        for method, verb, media in (("put", "Replace", "application/geo+json"), ("patch", "Update", None)):
            one[method] = {
                "summary": f"{verb} a feature of {cid} (a draft change set)"
                + (" by a JSON merge patch of geometry and properties" if media is None else ""),
                "operationId": f"{method}{cid}Feature",
                "tags": tags,
                "parameters": [fid, if_match, content_crs],
                "requestBody": {
                    "required": True,
                    "content": {media or "application/merge-patch+json": {"schema": feature if media else {}}},
                },
                "responses": {
                    "200": change,
                    **refusals,
                    "412": _problem("Stale If-Match"),
                    "428": _problem("If-Match missing"),
                },
            }
        one["delete"] = {
            "summary": f"Delete a feature of {cid} (a draft change set)",
            "operationId": f"delete{cid}Feature",
            "tags": tags,
            "parameters": [fid, if_match],
            "responses": {
                "200": change,
                **refusals,
                "412": _problem("Stale If-Match"),
                "428": _problem("If-Match missing"),
            },
        }
        doc["paths"][f"/collections/{cid}/items/{{featureId}}/history"] = {
            "get": {
                "summary": f"Every published state of a feature of {cid}, with valid from/to, approver and change set",
                "operationId": f"history{cid}Feature",
                "tags": tags,
                "parameters": [fid],
                "responses": {
                    "200": _json_response(
                        "The feature's states, oldest first (a FeatureCollection)",
                        {"type": "object"},
                        "application/geo+json",
                    ),
                    "400": _problem("A malformed parameter"),
                    "404": _not_found(),
                },
            }
        }


#: The media types each kind of answer comes in besides the one the component declares: pygeoapi renders
#: HTML and JSON-LD (``f=html``, ``f=jsonld``; items also CSV), and answers its own errors in the format asked
#: for or as plain JSON; gis_ioc's own errors are problem+json.
_PAGES = ("text/html", "application/ld+json")
_ALSO_SERVED = {
    "LandingPage": _PAGES,
    "Collection": _PAGES,
    "Features": (*_PAGES, "text/csv"),
    "Feature": _PAGES,
    "InvalidParameter": ("application/json", *_PAGES),
    "NotFound": ("application/json", *_PAGES),
    "ServerError": ("application/json", *_PAGES),
}


def _as_served(doc: dict[str, Any]) -> None:
    """The document says what the server answers, so that a client (or a checker) reading it is not
    surprised: every media type an answer comes in, queryables and schemas as ``application/schema+json``,
    and no ``OPTIONS`` operations (pygeoapi declares them; gis_ioc answers 405)."""
    responses: dict[str, Any] = doc["components"].setdefault("responses", {})
    for name, media_types in _ALSO_SERVED.items():
        content: dict[str, Any] | None = responses.get(name, {}).get("content")
        if not content:
            continue
        schema = next(iter(content.values())).get("schema", _OBJECT)
        for media in media_types:
            content.setdefault(media, {"schema": {"type": "string"} if media.startswith("text/") else schema})
    queryables = responses.get("Queryables", {}).get("content")
    if queryables is not None and "application/json" in queryables:
        queryables["application/schema+json"] = queryables.pop("application/json")
        queryables.setdefault("text/html", {"schema": {"type": "string"}})
    for item in doc.get("paths", {}).values():
        item.pop("options", None)


#: What every collection's items declare besides pygeoapi's own parameters: ``datetime`` (OGC API Features
#: Part 1 asks it of every collection; pygeoapi declares it only with a time field) and the filter of Part 3.
ITEMS_PARAMETERS = ("datetime", "filter", "filter-lang", "filter-crs")


def _items_parameters(doc: dict[str, Any], collections: list[str]) -> None:
    for cid in collections:
        operation = doc["paths"].get(f"/collections/{cid}/items", {}).get("get")
        if operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        declared = {p.get("name") or p.get("$ref", "").rsplit("/", 1)[-1] for p in parameters if isinstance(p, dict)}
        for name in ITEMS_PARAMETERS:
            if name not in declared:
                parameters.append({"$ref": f"#/components/parameters/{name}"})


def _shared_limit(doc: dict[str, Any]) -> None:
    """pygeoapi declares ``limit`` in each items path; clients read the page size from the component
    ``#/components/parameters/limit`` (QGIS does, and pages by 100 without it). The component takes the
    default and maximum most layers share, and each path whose ``limit`` says the same refers to it; a
    layer with its own paging keeps its own declaration."""
    inline: list[tuple[list[Any], int, dict[str, Any]]] = []
    for item in doc.get("paths", {}).values():
        parameters = item.get("get", {}).get("parameters", [])
        for index, parameter in enumerate(parameters):
            if isinstance(parameter, dict) and parameter.get("name") == "limit" and parameter.get("in") == "query":
                inline.append((parameters, index, parameter))
    if not inline:
        return
    schemas = [(p["schema"].get("default"), p["schema"].get("maximum")) for _, _, p in inline]
    default, maximum = max(set(schemas), key=schemas.count)
    component = next(
        p for _, _, p in inline if (p["schema"].get("default"), p["schema"].get("maximum")) == (default, maximum)
    )
    doc["components"].setdefault("parameters", {})["limit"] = component
    for parameters, index, parameter in inline:
        if (parameter["schema"].get("default"), parameter["schema"].get("maximum")) == (default, maximum):
            parameters[index] = {"$ref": "#/components/parameters/limit"}


def for_collections(doc: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    """The document without the paths and tags of the ``hidden`` collections (those a viewer may not see),
    so that it never names them. Shares everything else with ``doc``: do not modify the result in place."""
    if not hidden:
        return doc

    def shown(path: str) -> bool:
        if not path.startswith("/collections/"):
            return True
        return path.split("/", 3)[2] not in hidden

    out = dict(doc)
    out["paths"] = {path: item for path, item in doc.get("paths", {}).items() if shown(path)}
    out["tags"] = [tag for tag in doc.get("tags", []) if tag.get("name") not in hidden]
    return out
