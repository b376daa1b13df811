"""The OGC door's error messages are written in Vietnamese and English, and answered in the caller's language.

Two guards:

1. **The source** (``ast``, no database). In the modules of the OGC API door (:data:`DOOR`):

   a. Every construction of an error of :mod:`gis_ioc.errors` (a class that is, or derives from,
      ``GisIocError``, however imported or aliased; resolved on the imported module) that passes a message
      (a positional argument) also passes ``vi=`` with something other than ``None``. This holds wherever
      the error is made: ``raise InvalidInput(…)``, ``return NotFound(…)`` in a helper, a re-raise with
      ``from exc``. A helper that takes both languages (``def _invalid(en, vi): return InvalidInput(en,
      vi=vi)``) passes the rule by its own construction, so calls of it are not checked again; a helper that
      takes one message (``def bad(m): return InvalidInput(m)``) fails it. A bare ``raise`` or
      ``raise exc`` constructs nothing and is not checked.
   b. Every construction of a pygeoapi error (a class with a ``pygeoapi`` class in its ancestry, e.g.
      ``ProviderInvalidQueryError``, ``ProcessorExecuteError``, gis_ioc's ``ProviderUnavailable``) that
      passes a message (positional, or ``user_msg=``) gives it as ``say(lang, en, vi)``
      (:func:`gis_ioc.publish.provider.say`) or as ``<error>.text(lang)``: pygeoapi shows it as written.
   c. ``problem(status, title, detail)`` never gets a string written on the spot (a literal or f-string)
      as its detail: the door answers through ``refusal(request, …, en, vi)`` or an error's ``text``.
   d. Where both languages are written on the spot (f-strings in (a), ``say``, ``refusal``), every value
      the English interpolates is interpolated in the Vietnamese too (the variables a value reads, by
      name and attribute: ``{layer.id}``, ``{', '.join(allowed)}``); the Vietnamese may add more. A caught
      exception (``except … as exc``) interpolated in the English is exempt: the Vietnamese restates its
      parts.

2. **The answers**: the real application (``client``: a leader's API key; the suite's PostGIS) is sent
   malformed OGC requests; each 4xx problem's ``detail`` is Vietnamese by default (with
   ``Content-Language: vi``) and English with ``lang=en`` or ``Accept-Language: en``.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis_ioc.errors import GisIocError
from gis_ioc.publish import provider

#: The modules of the OGC API door whose messages reach callers.
DOOR = (
    "gis_ioc.publish.params",
    "gis_ioc.publish.cql",
    "gis_ioc.publish.ogc",
    "gis_ioc.publish.tiles",
    "gis_ioc.publish.provider",
    "gis_ioc.publish.processes",
    "gis_ioc.publish.styles",
    "gis_ioc.publish.queryables",
)


# -- 1. the source -------------------------------------------------------------------------------------


def _resolve(module: ModuleType, node: ast.expr) -> Any:
    """The module-level object a call's function names (``InvalidInput``, ``errors.NotFound``), or None."""
    if isinstance(node, ast.Name):
        return getattr(module, node.id, None)
    if isinstance(node, ast.Attribute):
        owner = _resolve(module, node.value)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _is_gis_ioc_error(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, GisIocError)


def _is_pygeoapi_error(obj: Any) -> bool:
    return (
        isinstance(obj, type)
        and issubclass(obj, Exception)
        and any(c.__module__.startswith("pygeoapi") for c in obj.__mro__ if c not in (Exception, BaseException))
    )


def _written(node: ast.expr | None) -> bool:
    """A string written on the spot: a literal, an f-string, or several of them joined with +."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _written(node.left) or _written(node.right)
    return False


def _values(node: ast.expr) -> set[str]:
    """What the f-string(s) of a message interpolate: each variable read, with its attributes
    (``layer.id``; ``', '.join(allowed)`` reads ``allowed``), called functions left out."""
    found: set[str] = set()

    def chain(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, ast.Attribute):
            inner = chain(expr.value)
            return f"{inner}.{expr.attr}" if inner else None
        return None

    def visit(expr: ast.AST, called: bool = False) -> None:
        if isinstance(expr, ast.Call):
            visit(expr.func, called=True)
            for arg in [*expr.args, *(k.value for k in expr.keywords)]:
                visit(arg)
            return
        if isinstance(expr, ast.Name | ast.Attribute) and (name := chain(expr)) is not None:
            if not called:
                found.add(name)
            return
        if isinstance(expr, ast.Attribute):  # a method of something else: "', '.join"
            visit(expr.value)
            return
        for child in ast.iter_child_nodes(expr):
            visit(child)

    for part in ast.walk(node):
        if isinstance(part, ast.FormattedValue):
            visit(part.value)
    return found


class Finding:
    def __init__(self, path: Path, node: ast.AST, what: str) -> None:
        self.line: int = getattr(node, "lineno", 0)
        self.where = f"{path.name}:{self.line}"
        self.what = what

    def __repr__(self) -> str:
        return f"{self.where}: {self.what}"


def _caught(tree: ast.AST) -> dict[ast.AST, set[str]]:
    """For each node, the names bound by the ``except … as name`` handlers around it."""
    around: dict[ast.AST, set[str]] = {}

    def walk(node: ast.AST, names: frozenset[str]) -> None:
        around[node] = set(names)
        inner = names | {node.name} if isinstance(node, ast.ExceptHandler) and node.name else names
        for child in ast.iter_child_nodes(node):
            walk(child, frozenset(inner))

    walk(tree, frozenset())
    return around


def _same_values(path: Path, call: ast.Call, en: ast.expr, vi: ast.expr, exempt: set[str]) -> Iterator[Finding]:
    missing = {v for v in _values(en) - _values(vi) if v.split(".")[0] not in exempt}
    if missing:
        yield Finding(path, call, f"the Vietnamese does not interpolate {sorted(missing)} as the English does")


def findings(name: str) -> list[Finding]:
    """What module ``name`` breaks of rules a–d, in the order of its lines."""
    return sorted(_findings(name), key=lambda f: f.line)


def _findings(name: str) -> Iterator[Finding]:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    path = Path(module.__file__)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    caught = _caught(tree)
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        target = _resolve(module, call.func)
        keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
        label = ast.unparse(call.func)
        if _is_gis_ioc_error(target) and call.args:
            vi = keywords.get("vi")
            if vi is None or (isinstance(vi, ast.Constant) and vi.value is None):
                yield Finding(path, call, f"{label}(…) has a message but no vi=")
            elif _written(call.args[0]) and _written(vi):
                yield from _same_values(path, call, call.args[0], vi, caught[call])
        elif _is_pygeoapi_error(target):
            message = call.args[0] if call.args else keywords.get("user_msg")
            if message is None:
                continue
            said = isinstance(message, ast.Call) and (
                _resolve(module, message.func) is provider.say
                or (isinstance(message.func, ast.Attribute) and message.func.attr == "text")
            )
            if not said:
                yield Finding(path, call, f"{label}(…)'s message is not say(lang, en, vi) nor an error's text(lang)")
        elif target is provider.say and len(call.args) == 3:
            yield from _same_values(path, call, call.args[1], call.args[2], caught[call])
        elif getattr(target, "__name__", None) == "refusal" and len(call.args) == 5:
            yield from _same_values(path, call, call.args[3], call.args[4], caught[call])
        elif getattr(target, "__name__", None) == "problem" and len(call.args) >= 3 and _written(call.args[2]):
            yield Finding(path, call, "problem(…) with a detail written in one language")


@pytest.mark.parametrize("name", DOOR)
def test_every_message_of_the_ogc_door_is_written_in_vietnamese_too(name: str) -> None:
    assert list(findings(name)) == []


def test_the_source_check_finds_an_english_only_message(tmp_path: Path) -> None:
    """The rule itself: an English-only error, a one-language helper and a pygeoapi message written on the spot
    are found; two-language ones are not."""
    source = """
from gis_ioc.errors import InvalidInput as Bad, NotFound
from gis_ioc.publish.provider import say
from pygeoapi.provider.base import ProviderInvalidQueryError

def check(raw, lang):
    if raw == "a":
        raise Bad(f"limit must be an integer, got {raw!r}")
    if raw == "b":
        raise NotFound(f"no feature {raw}", vi="không có đối tượng")
    if raw == "c":
        raise ProviderInvalidQueryError(user_msg=f"query not understood: {raw}")
    if raw == "d":
        raise ProviderInvalidQueryError(user_msg=say(lang, f"bad {raw}", f"sai {raw}"))
    raise Bad(f"limit {raw!r}", vi=f"limit {raw!r}")

def one_language(message):
    return Bad(message)

def both(en, vi):
    return Bad(en, vi=vi)
"""
    (tmp_path / "vi_rule_probe.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        found = [f.what for f in findings("vi_rule_probe")]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("vi_rule_probe", None)
    assert found == [
        "Bad(…) has a message but no vi=",
        "the Vietnamese does not interpolate ['raw'] as the English does",
        "ProviderInvalidQueryError(…)'s message is not say(lang, en, vi) nor an error's text(lang)",
        "Bad(…) has a message but no vi=",
    ], found


# -- 2. the answers ------------------------------------------------------------------------------------

#: (path, query, status, Vietnamese detail contains, English detail contains)
CASES: dict[str, tuple[str, dict[str, str], int, str, str]] = {
    "bbox": (
        "/ogc/collections/iot_devices/items",
        {"bbox": "200,2,300,4"},
        400,
        "bbox: kinh độ nằm ngoài khoảng [-180, 180]: '200,2,300,4'",
        "bbox longitude out of range [-180, 180]: '200,2,300,4'",
    ),
    "bbox numbers": (
        "/ogc/collections/schools/items",
        {"bbox": "a,b,c,d"},
        400,
        "bbox: các giá trị phải là số",
        "bbox values must be numbers",
    ),
    "limit": (
        "/ogc/collections/schools/items",
        {"limit": "abc"},
        400,
        "limit phải là số nguyên, không phải 'abc'",
        "limit must be an integer, got 'abc'",
    ),
    "limit minimum": (
        "/ogc/collections/schools/items",
        {"limit": "0"},
        400,
        "limit phải từ 1 trở lên, không phải 0",
        "limit must be at least 1, got 0",
    ),
    "filter syntax": (
        "/ogc/collections/schools/items",
        {"filter": "name = = 'x'"},
        400,
        "filter: không đọc được biểu thức cql2-text:",
        "filter does not parse as cql2-text:",
    ),
    "filter property": (
        "/ogc/collections/schools/items",
        {"filter": "shoe_size = 3"},
        400,
        "filter: 'shoe_size' không phải trường truy vấn được của lớp schools",
        "filter: 'shoe_size' is not a queryable of schools",
    ),
    "filter-lang": (
        "/ogc/collections/schools/items",
        {"filter": "name = 'x'", "filter-lang": "sql"},
        400,
        "filter-lang 'sql' không được hỗ trợ; dùng cql2-text hoặc cql2-json",
        "filter-lang 'sql' is not supported",
    ),
    "unknown collection": (
        "/ogc/collections/no_such_layer/items",
        {},
        404,
        "không có lớp dữ liệu 'no_such_layer'",
        "no collection 'no_such_layer'",
    ),
    "unknown feature": (
        "/ogc/collections/iot_devices/items/999999",
        {},
        404,
        "không có đối tượng 999999 trong lớp iot_devices",
        "no feature 999999 in iot_devices",
    ),
    "malformed feature id": (
        "/ogc/collections/schools/items/abc",
        {},
        404,
        "không có đối tượng 'abc' trong lớp schools",
        "no feature 'abc' in schools",
    ),
    "crs": (
        "/ogc/collections/schools/items",
        {"crs": "EPSG:2154"},
        400,
        "crs: hệ tọa độ 'EPSG:2154' không được hỗ trợ; dùng một trong:",
        "crs: CRS 'EPSG:2154' is not offered",
    ),
    "sortby": (
        "/ogc/collections/schools/items",
        {"sortby": "garbage"},
        400,
        "sortby: 'garbage' không phải trường của lớp schools",
        "sortby: 'garbage' is not a property of schools",
    ),
    "datetime": (
        "/ogc/collections/schools/items",
        {"datetime": "yesterday"},
        400,
        "datetime 'yesterday' không đúng dạng RFC 3339",
        "datetime 'yesterday' is not RFC 3339",
    ),
    "datetime interval": (
        "/ogc/collections/schools/items",
        {"datetime": "2026-02-01/2026-01-01"},
        400,
        "datetime: khoảng thời gian kết thúc trước khi bắt đầu",
        "datetime interval ends before it begins",
    ),
    "unknown parameter": (
        "/ogc/collections/schools/items",
        {"colour": "red"},
        400,
        "tham số không được hỗ trợ 'colour'",
        "unknown parameter 'colour'",
    ),
    "format": (
        "/ogc/collections/schools/items",
        {"f": "shp"},
        400,
        "f='shp' không có ở đây",
        "f='shp' is not offered here",
    ),
    "tile": (
        "/ogc/collections/schools/tiles/WebMercatorQuad/3/9/1",
        {},
        400,
        "tile 3/9/1 nằm ngoài lưới tile (0–7)",
        "tile 3/9/1 is outside the tile matrix (0–7)",
    ),
    "tile matrix set": (
        "/ogc/tileMatrixSets/WorldCRS84Quad",
        {},
        404,
        "tile matrix set 'WorldCRS84Quad' không được hỗ trợ; dùng WebMercatorQuad",
        "tile matrix set 'WorldCRS84Quad' is not offered",
    ),
    "style": (
        "/ogc/collections/schools/styles/night",
        {},
        404,
        "không có kiểu hiển thị 'night'",
        "style 'night' not found",
    ),
}


def _problem(client: TestClient, path: str, params: dict[str, str], status: int, **headers: str) -> Any:
    answer = client.get(path, params=params, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    return answer


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_request_is_answered_in_vietnamese_by_default(client: TestClient, case: str) -> None:
    path, params, status, vi, _ = CASES[case]
    answer = _problem(client, path, params, status)
    assert vi in answer.json()["detail"], answer.json()
    assert answer.headers["content-language"] == "vi"
    assert answer.json()["detail"].isascii() is False  # written with Vietnamese letters


@pytest.mark.parametrize("case", CASES)
def test_lang_en_answers_in_english(client: TestClient, case: str) -> None:
    path, params, status, vi, en = CASES[case]
    answer = _problem(client, path, {**params, "lang": "en"}, status)
    assert en in answer.json()["detail"] and vi not in answer.json()["detail"], answer.json()
    assert answer.headers["content-language"] == "en"


@pytest.mark.parametrize("case", ["bbox", "limit", "filter syntax", "unknown collection", "unknown feature", "crs"])
def test_an_english_accept_language_answers_in_english(client: TestClient, case: str) -> None:
    path, params, status, vi, en = CASES[case]
    english = _problem(client, path, params, status, **{"Accept-Language": "en-GB,en;q=0.9,vi;q=0.5"})
    assert en in english.json()["detail"], english.json()
    vietnamese = _problem(client, path, params, status, **{"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.8"})
    assert vi in vietnamese.json()["detail"], vietnamese.json()


def test_a_scenario_run_refused_is_reported_in_the_callers_language(client: TestClient) -> None:
    """A process execution without its period: pygeoapi's 400 carries gis_ioc's message in the caller's
    language (pygeoapi's own prefix, "Error executing process:", stays English)."""
    url = "/ogc/processes/scenario-health/execution"
    vietnamese = client.post(url, json={"inputs": {"province": True}})
    assert vietnamese.status_code == 400 and "thiếu period" in vietnamese.json()["description"], vietnamese.text
    english = client.post(url + "?lang=en", json={"inputs": {"province": True}})
    assert english.status_code == 400 and "period is required" in english.json()["description"], english.text
    not_an_object = client.post(url, content="3", headers={"Content-Type": "application/json"})
    assert not_an_object.status_code == 400
    assert "phải là một đối tượng JSON" in not_an_object.json()["detail"], not_an_object.text


def test_the_providers_messages_through_pygeoapi_are_in_the_callers_language(client: TestClient) -> None:
    """Pages pygeoapi renders (JSON-LD, HTML, CSV) carry gis_ioc's provider messages in the caller's language
    (pygeoapi's own checks, e.g. "limit value should be an integer", stay in its English)."""
    url = "/ogc/collections/schools/items/99999999"
    vietnamese = client.get(url, params={"f": "jsonld"})
    assert vietnamese.status_code == 404
    assert vietnamese.json()["description"] == "không có đối tượng 99999999 trong lớp schools", vietnamese.text
    english = client.get(url, params={"f": "jsonld", "lang": "en"})
    assert english.status_code == 404 and english.json()["description"] == "no feature 99999999 in schools"


def test_an_address_or_method_the_ogc_api_lacks_is_a_problem_in_the_callers_language(client: TestClient) -> None:
    """Starlette's own 404 and 405 are plain text, which the API definition does not declare (schemathesis
    found one for a feature id ending in a newline)."""
    missing = client.get("/ogc/collections/trees/items/%C3%90%0A")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["detail"].startswith("không có địa chỉ /ogc/")
    assert (
        client.get("/ogc/no-such-thing", params={"lang": "en"}).json()["detail"]
        == "no such address: /ogc/no-such-thing"
    )
    refused = client.delete("/ogc/conformance")
    assert refused.status_code == 405 and "GET" in refused.headers["allow"]
    assert refused.json()["detail"] == "không dùng được DELETE với /ogc/conformance"
