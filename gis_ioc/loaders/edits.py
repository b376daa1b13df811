"""Edits of single features (OGC API Features Part 4) as draft loads, through the loader's quality gates.

Each edit is one change set: a draft vector load of one feature (``params.edit`` names the operation:
``create``, ``replace``, ``update`` or ``delete``, and ``params.fid`` the feature it changes). The feature
goes through exactly the gates of a file (:func:`gis_ioc.loaders.vector.load_vector`: required fields,
code lists, types and ranges, the coordinate system, geometry validity, inside the province, derived
commune code, area and length, keys and overlaps against the approved rows); a refused edit writes
nothing. A replace, an update or a delete records the row it takes out of service in
``gis_ioc.load_superseded`` (a delete is a load with no rows), so approving the load with
``gis-ioc load approve N`` or ``POST /api/loads/N/approve`` publishes the change, and until then every
reader sees the feature as it was.

Optimistic concurrency: a feature's version (its ``ETag``) is its row's ``updated_at``. An edit of an
existing feature locks its row, checks ``If-Match`` against that version, and moves ``updated_at`` on:
of two edits made from the same version, exactly one passes; the other is refused (412) and must start
again from the feature as it now stands. Without ``If-Match`` an edit of an existing feature is refused
(428).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.ddl import table_ident
from gis_ioc.catalog.models import Layer
from gis_ioc.errors import GisIocError, InvalidInput, NotFound
from gis_ioc.loaders import derive, history
from gis_ioc.loaders.vector import LoaderConfig, LoadOptions, LoadRejected, LoadReport, load_vector
from gis_ioc.query.viewer import Viewer

Operation = Literal["create", "replace", "update", "delete"]
#: audit(conn, result): the edit's audit record, written in the edit's transaction
Audit = Callable[[psycopg.Connection[Any], dict[str, Any]], None]


class PreconditionFailed(GisIocError):
    """``If-Match`` names a version of the feature that is no longer the current one."""

    status = 412
    title = "Precondition failed"


class PreconditionRequired(GisIocError):
    """An edit of an existing feature without ``If-Match``."""

    status = 428
    title = "Precondition required"


class EditRejected(GisIocError):
    """The edit broke a quality gate; ``report`` says which (nothing was written)."""

    status = 400
    title = "Edit refused"

    def __init__(self, report: LoadReport) -> None:
        first = _first_issue(report)
        en = report.message_en or report.message
        vi = report.message
        if first is not None:
            en = f"{first.text('en')} [{first.code}]"
            vi = f"{first.message} [{first.code}]"
        super().__init__(en, vi=vi)
        self.report = report


def _first_issue(report: LoadReport) -> Any:
    for severity in ("error", "warning"):
        for issue in report.findings.issues:
            if issue.severity == severity:
                return issue
    return None


@dataclass
class EditResult:
    """What an edit made: the change set (load) and the draft feature, if any."""

    operation: Operation
    layer: str
    load_id: int
    fid: int | None  # the draft row (None for a delete)
    replaces: int | None  # the feature it takes out of service
    approval: str = "draft"
    message: str = ""
    message_en: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "operation": self.operation,
            "layer": self.layer,
            "changeSet": self.load_id,
            "load_id": self.load_id,
            "fid": self.fid,
            "replaces": self.replaces,
            "approval": self.approval,
            "message": self.message_en if lang == "en" else self.message,
        }


def version_tag(fid: int, updated_at: datetime) -> str:
    """The strong entity tag of a feature's version (its row's ``updated_at``, to the microsecond)."""
    stamp = int(updated_at.timestamp() * 1_000_000)
    return f'"{fid}.{stamp}"'


def _matches(if_match: str, tag: str) -> bool:
    candidates = [c.strip() for c in if_match.split(",")]
    return "*" in candidates or tag in candidates


def _current(conn: psycopg.Connection[Any], layer: Layer, fid: int) -> dict[str, Any]:
    """The published row of feature ``fid``, locked for the edit (404 when there is none)."""
    names = [f.name for f in layer.fields]
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    row = conn.execute(
        sql.SQL(
            "SELECT {}, ST_AsGeoJSON(geom)::json, updated_at, sys_from FROM {} "
            "WHERE fid = %s AND approval = 'approved' FOR UPDATE"
        ).format(cols, table_ident(layer)),
        (fid,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no feature {fid} in {layer.id}", vi=f"không có đối tượng {fid} trong {layer.id}")
    return {
        "properties": dict(zip(names, row[: len(names)], strict=True)),
        "geometry": row[-3],
        "updated_at": row[-2],
        "sys_from": row[-1],
    }


def _params(operation: Operation, fid: int | None, old: dict[str, Any] | None) -> dict[str, Any]:
    """The change set's record of the edit: the operation, the feature, and the published state it was
    made from (``base``: its ``sys_from``; approval refuses the edit once another state was published)."""
    params: dict[str, Any] = {"edit": operation, "fid": fid}
    if old is not None and old["sys_from"] is not None:
        params["base"] = old["sys_from"].isoformat()
    return params


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def check_feature(layer: Layer, viewer: Viewer, feature: Any, *, partial: bool = False) -> dict[str, Any]:
    """A GeoJSON Feature (or, ``partial``, a merge patch of one) naming only fields the viewer may see."""
    if not isinstance(feature, dict) or (not partial and feature.get("type") != "Feature"):
        raise InvalidInput(
            'the body must be a GeoJSON Feature: {"type": "Feature", "geometry": {…}, "properties": {…}}',
            vi='nội dung phải là một đối tượng GeoJSON: {"type": "Feature", "geometry": {…}, "properties": {…}}',
        )
    props = feature.get("properties")
    if props is not None and not isinstance(props, dict):
        raise InvalidInput("properties must be a JSON object", vi="properties phải là một đối tượng JSON")
    geometry = feature.get("geometry")
    if not partial and not isinstance(geometry, dict):
        raise InvalidInput(
            "the feature has no geometry: send a GeoJSON geometry",
            vi="đối tượng không có hình học (geometry): gửi một hình học GeoJSON",
        )
    if geometry is not None and not isinstance(geometry, dict):
        raise InvalidInput("geometry must be a GeoJSON geometry object", vi="geometry phải là một hình học GeoJSON")
    computed = sorted(k for k in (props or {}) if k in layer.live_names)
    if computed:
        names = ", ".join(computed)
        raise InvalidInput(
            f"{names} of {layer.id}: computed from the live state, read-only; leave out of the edit",
            vi=f"{names} của lớp {layer.id}: trường được tính tự động từ trạng thái trực tuyến, chỉ đọc, "
            "không sửa được; bỏ khỏi nội dung gửi lên",
        )
    seen = {f.name for f in viewer.sees(layer).fields}
    unknown = sorted(k for k in (props or {}) if k not in seen)
    if unknown:
        names = ", ".join(sorted(seen))
        raise InvalidInput(
            f"{layer.id} has no field {', '.join(unknown)}; its fields: {names}",
            vi=f"lớp {layer.id} không có trường {', '.join(unknown)}; các trường của lớp: {names}",
        )
    return feature


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def apply_edit(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    layer: Layer,
    operation: Operation,
    config: LoaderConfig,
    *,
    fid: int | None = None,
    body: dict[str, Any] | None = None,
    crs: str | None = None,
    if_match: str | None = None,
    accept_warnings: bool = False,
    audit: Audit | None = None,
) -> EditResult:
    """Make one edit a draft change set, in one transaction (a savepoint inside the caller's); raises
    :class:`EditRejected` (a gate), :class:`PreconditionFailed`/:class:`PreconditionRequired` (``If-Match``),
    :class:`~gis_ioc.errors.NotFound` or :class:`~gis_ioc.errors.InvalidInput`, writing nothing."""
    if layer.versioned:
        raise InvalidInput(
            f"{layer.id} is versioned: load boundaries with `gis-ioc load boundaries FILE --valid-from DATE`",
            vi=f"{layer.id} có phiên bản theo thời gian: nạp ranh giới bằng "
            "`gis-ioc load boundaries TỆP --valid-from NGÀY`",
        )
    with conn.transaction():
        old: dict[str, Any] | None = None
        if operation != "create":
            assert fid is not None
            old = _current(conn, layer, fid)
            tag = version_tag(fid, old["updated_at"])
            if if_match is None:
                raise PreconditionRequired(
                    f"an edit of feature {fid} needs If-Match with its ETag (GET it first): {tag}",
                    vi=f"sửa đối tượng {fid} cần tiêu đề If-Match mang ETag của nó (đọc nó trước bằng GET): {tag}",
                )
            if not _matches(if_match, tag):
                raise PreconditionFailed(
                    f"feature {fid} has changed since the version {if_match} (now {tag}): read it again and "
                    "make the edit from the current version",
                    vi=f"đối tượng {fid} đã thay đổi so với phiên bản {if_match} (hiện là {tag}): "
                    "đọc lại và sửa từ phiên bản hiện hành",
                )
            # the version moves on: an edit made from the same version after this one is refused
            conn.execute(
                sql.SQL("UPDATE {} SET updated_at = clock_timestamp() WHERE fid = %s").format(table_ident(layer)),
                (fid,),
            )
        raw = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode()
        if operation == "delete":
            assert fid is not None
            load_id = history.insert_load(
                conn,
                kind="vector",
                layer_id=layer.id,
                mode="append",
                source_unit=None,
                file_name=f"OGC API: DELETE {layer.id}/{fid}",
                file_sha256=hashlib.sha256(raw).hexdigest(),
                loaded_by=viewer.name,
                params=_params(operation, fid, old),
            )
            message = (
                f"đã ghi yêu cầu xóa đối tượng {fid} của {layer.id}, lần nạp {load_id} (bản nháp: phê duyệt để công bố)"
            )
            message_en = f"deletion of feature {fid} of {layer.id} recorded as load {load_id} (draft: approve it)"
            conn.execute(
                """UPDATE gis_ioc.loads SET status = 'done', finished_at = clock_timestamp(), row_count = 0,
                          source_date = current_date, report = %s WHERE id = %s""",
                (Jsonb({"status": "loaded", "message": message, "message_en": message_en}), load_id),
            )
            new_fid = None
        else:
            load_id, new_fid, message, message_en = _load_feature(
                conn, catalog, viewer, layer, operation, config, old, body or {}, crs, raw, fid, accept_warnings
            )
        if fid is not None:
            conn.execute(
                "INSERT INTO gis_ioc.load_superseded (load_id, layer_id, fid) VALUES (%s, %s, %s)",
                (load_id, layer.id, fid),
            )
        result = EditResult(operation, layer.id, load_id, new_fid, fid, message=message, message_en=message_en)
        if audit is not None:
            audit(conn, result.as_dict("en"))
        return result


def _load_feature(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    layer: Layer,
    operation: Operation,
    config: LoaderConfig,
    old: dict[str, Any] | None,
    body: dict[str, Any],
    crs: str | None,
    raw: bytes,
    fid: int | None,
    accept_warnings: bool,
) -> tuple[int, int, str, str]:
    """The feature through the loader: its load id, its draft row, and the loader's message."""
    seen = {f.name for f in viewer.sees(layer).fields}
    hidden = {} if old is None else {k: v for k, v in old["properties"].items() if k not in seen}
    if operation == "update":
        assert old is not None
        current = {"type": "Feature", "geometry": old["geometry"], "properties": dict(old["properties"])}
        if body.get("geometry") is not None:
            for name in derive.derivable(layer):  # a moved feature gets them from its new geometry
                current["properties"].pop(name, None)
        feature = merge_patch(current, {k: v for k, v in body.items() if k in ("geometry", "properties")})
        if crs is not None and "geometry" not in body:
            crs = None  # the stored geometry is in CRS84, whatever the patch's Content-Crs
    else:
        given = dict(body.get("properties") or {})
        feature = {"type": "Feature", "geometry": body.get("geometry"), "properties": given}
    props = {**hidden, **{k: _jsonable(v) for k, v in (feature.get("properties") or {}).items()}}
    props = {k: v for k, v in props.items() if v is not None}
    from_geometry = derive.derivable(layer)
    missing = [f for f in layer.fields if f.required and f.name not in props and f.name not in from_geometry]
    if missing:
        raise InvalidInput(
            "required field " + ", ".join(f"{f.name} ({f.title.en})" for f in missing) + " missing [required]",
            vi="thiếu trường bắt buộc " + ", ".join(f"{f.name} ({f.title.vi})" for f in missing) + " [required]",
        )
    if layer.key is not None and fid is not None and props.get(layer.key) is not None:
        taken = conn.execute(
            sql.SQL("SELECT fid FROM {} WHERE approval = 'approved' AND {}::text = %s AND fid <> %s LIMIT 1").format(
                table_ident(layer), sql.Identifier(layer.key)
            ),
            (str(props[layer.key]), fid),
        ).fetchone()
        if taken is not None:
            key = props[layer.key]
            raise InvalidInput(
                f"{layer.key} {key!r} is already approved in {layer.id} (fid {taken[0]}) [key_exists]",
                vi=f"{layer.key} {key!r} đã được duyệt trong {layer.id} (fid {taken[0]}) [key_exists]",
            )
    work = config.work_dir / f"edit-{uuid.uuid4().hex}"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "feature.geojson"
    document = {"type": "FeatureCollection", "features": [{**feature, "properties": props}]}
    path.write_text(json.dumps(document, ensure_ascii=False, default=str), encoding="utf-8")
    target = f"{layer.id}/{fid}" if fid is not None else layer.id
    verb = {"create": "POST", "replace": "PUT", "update": "PATCH"}[operation]
    options = LoadOptions(
        layer_id=layer.id,
        crs=crs,
        mode="upsert" if layer.key is not None and fid is not None else "append",
        source_date=date.today(),
        accept_warnings=accept_warnings,
        loaded_by=viewer.name,
        file_name=f"OGC API: {verb} {target}",
    )
    try:
        report = load_vector(conn, catalog, path, options, config)
    except LoadRejected as exc:
        raise EditRejected(exc.report) from exc
    finally:
        path.unlink(missing_ok=True)
        work.rmdir()
    assert report.load_id is not None
    conn.execute(
        """UPDATE gis_ioc.loads SET params = params || %s, file_sha256 = %s WHERE id = %s""",
        (Jsonb(_params(operation, fid, old)), hashlib.sha256(raw).hexdigest(), report.load_id),
    )
    row = conn.execute(
        sql.SQL("SELECT fid FROM {} WHERE load_id = %s").format(table_ident(layer)), (report.load_id,)
    ).fetchone()
    assert row is not None
    return report.load_id, int(row[0]), report.message, report.message_en or report.message
