"""A self-contained OpenAPI document for the OGC API.

pygeoapi's generated document points at schemas on schemas.opengis.net and GitHub. An IOC runs on a
closed government network where those addresses cannot be reached, and clients (and test tools)
must resolve every reference, so gis_ioc replaces each external reference with a local component
and adds the paths its own handlers serve (vector tiles, POST filters). Each viewer gets the document cut down
to the collections it may see (:func:`for_collections`).
"""

from __future__ import annotations

from typing import Any

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
            "description": "RFC 3339 instant or interval (a/b, ../b, a/..)",
            "schema": {"type": "string"},
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

_EXTERNAL = {
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
    return out


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
