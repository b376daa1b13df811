"""New versions of the administrative boundaries, and re-keying data coded by former communes.

``gis-ioc load boundaries FILE --valid-from DATE`` reads the communes of a reorganisation (any format
the vector loader reads, any accepted CRS), closes the current version (``valid_to``), adds the new one
and the province outline (their union), and stores the crosswalk from the former units. History is
kept: the OGC API's ``datetime`` selects the version valid then.

The crosswalk carries, for each former unit and each new unit it went to, the share of its area: 1 for a
full merge; for a partial one the share comes from the file (``area_share``), else from the former
version's polygon in the database (area of its intersection with the new unit on the ellipsoid), else
(a former unit without a polygon) it is split evenly and the report says so. :func:`rekey` uses the
shares to carry figures keyed by former communes over to the new ones.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely

from gis_ioc.database.loads import sha256_file
from gis_ioc.errors import InvalidInput, LoadError
from gis_ioc.loaders import crs_check, history
from gis_ioc.loaders.sources import open_source, remove_work
from gis_ioc.loaders.vector import LoaderConfig

_CODE = re.compile(r"^\d{5}$")
_LEVELS = {"xã": "xã", "xa": "xã", "phường": "phường", "phuong": "phường", "đặc khu": "đặc khu"}


@dataclass
class BoundaryVersion:
    load_id: int
    valid_from: date
    communes: int
    closed: int
    crosswalk: int
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return (
            f"boundaries valid from {self.valid_from}: {self.communes} communes loaded (load {self.load_id}), "
            f"{self.closed} of the previous version closed, {self.crosswalk} crosswalk rows"
        )


def _short(name: str) -> str:
    return re.sub(r"^(Xã|Phường|Đặc khu)\s+", "", name)


def _read_crosswalk(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path.name}: cannot be read as a UTF-8 CSV: {exc}") from exc
    if not rows:
        raise LoadError(f"{path.name}: no rows")
    missing = {"old_code", "new_code", "merge_type"} - set(rows[0])
    if missing:
        raise LoadError(f"{path.name}: missing columns {', '.join(sorted(missing))} (old_code, new_code, merge_type)")
    for i, row in enumerate(rows, start=2):
        if row["merge_type"] not in ("full", "partial"):
            raise LoadError(f"{path.name} line {i}: merge_type {row['merge_type']!r} is not full or partial")
        share = (row.get("area_share") or "").strip()
        try:
            row["area_share"] = float(share) if share else None
        except ValueError:
            raise LoadError(f"{path.name} line {i}: area_share {share!r} is not a number") from None
    return rows


def load_boundary_version(
    conn: psycopg.Connection[Any],
    path: Path,
    valid_from: date,
    config: LoaderConfig,
    *,
    crosswalk: Path | None = None,
    crs: str | None = None,
    mapping: dict[str, str] | None = None,
    encoding: str | None = None,
    source_unit: str | None = None,
    loaded_by: str = "gis-ioc",
) -> BoundaryVersion:
    """Add the version of the communes in ``path`` valid from ``valid_from``; one transaction."""
    latest = conn.execute("SELECT max(valid_from) FROM layers.communes").fetchone()
    if latest and latest[0] is not None and valid_from <= latest[0]:
        raise InvalidInput(
            f"--valid-from {valid_from}: a version valid from {latest[0]} exists; a new one must be later"
        )
    work = config.work_dir / uuid.uuid4().hex
    try:
        source = open_source(path, work, encoding=encoding, max_unzipped_bytes=config.max_unzipped_bytes, polygons=True)
    finally:
        remove_work(work)
    frame = source.frame.rename(columns=dict(mapping or {}))
    notes = list(source.notes)
    for needed in ("code", "name"):
        if needed not in frame.columns:
            raise LoadError(
                f"{path.name}: no {needed!r} column (use --map COLUMN={needed}); columns: {list(frame.columns)}"
            )
    codes = [str(c).strip() for c in frame["code"]]
    bad = [c for c in codes if not _CODE.match(c)]
    if bad:
        raise LoadError(f"{path.name}: codes must have 5 digits (official unit codes); found {bad[:5]}")
    dup = sorted({c for c in codes if codes.count(c) > 1})
    if dup:
        raise LoadError(f"{path.name}: codes repeat: {dup[:10]}")
    levels = [_LEVELS.get(str(v).strip().lower(), "") for v in frame.get("level", ["xã"] * len(frame))]
    if "" in levels:
        raise LoadError(f"{path.name}: level must be xã, phường or đặc khu")

    reading: crs_check.SourceCrs | None = None
    if crs:
        reading = crs_check.source_crs(crs_check.parse_crs(crs), notes)
    elif source.declared_crs is not None:
        reading = crs_check.source_crs(source.declared_crs, notes)
    if reading is None:
        raise LoadError(f"{path.name}: no coordinate system in the file; give it with --crs (e.g. EPSG:9209)")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    with np.errstate(all="ignore"):
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(crs_check.to_wgs84(reading, xy[:, 0], xy[:, 1])))
    geoms = shapely.force_2d(geoms)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = [shapely.make_valid(g) for g in geoms[invalid]]
        notes.append(f"{int(invalid.sum())} invalid polygons repaired: {', '.join(np.array(codes)[invalid][:10])}")
    polys = []
    for code, geom in zip(codes, geoms, strict=True):
        parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
        if not parts:
            raise LoadError(f"{path.name}: commune {code} has no polygon")
        polys.append(shapely.multipolygons(shapely.get_parts(shapely.union_all(parts))))
    current = conn.execute("SELECT ST_AsBinary(geom) FROM layers.province WHERE valid_to IS NULL").fetchone()
    if current is not None:
        province = shapely.from_wkb(bytes(current[0]))
        xy = np.array([shapely.get_coordinates(shapely.point_on_surface(p))[0] for p in polys])
        shapely.prepare(province)
        share = float(shapely.contains_xy(province.buffer(0.01), xy[:, 0], xy[:, 1]).mean())
        if share < 0.9:
            raise LoadError(
                f"{path.name}: read as {reading.label} only {share:.0%} of the communes lie in the current province; "
                "check the coordinate system (--crs)"
            )
    cross = _read_crosswalk(crosswalk) if crosswalk else []
    unknown = sorted({r["new_code"] for r in cross} - set(codes))
    if unknown:
        raise LoadError(
            f"{crosswalk.name if crosswalk else ''}: new codes without a commune in the file: {unknown[:10]}"
        )

    def text(col: str, i: int) -> str | None:
        if col not in frame.columns:
            return None
        value = frame[col].iloc[i]
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

    try:
        with conn.transaction():
            load_id = history.insert_load(
                conn, kind="boundaries", layer_id="communes", mode="replace", source_unit=source_unit,
                file_name=path.name, file_sha256=sha256_file(path), loaded_by=loaded_by,
                params={"valid_from": valid_from.isoformat(), "crs": reading.label,
                        "crosswalk": crosswalk and crosswalk.name},
            )  # fmt: skip
            conn.execute(
                "UPDATE gis_ioc.loads SET approval = 'approved', approved_by = %s, approved_at = now() WHERE id = %s",
                (loaded_by, load_id),
            )
            closed = conn.execute(
                "UPDATE layers.communes SET valid_to = %s, updated_at = now() WHERE valid_to IS NULL", (valid_from,)
            ).rowcount
            prov = conn.execute(
                "SELECT code, name, name_en FROM layers.province WHERE valid_to IS NULL "
                "ORDER BY valid_from DESC LIMIT 1"
            ).fetchone()
            conn.execute(
                "UPDATE layers.province SET valid_to = %s, updated_at = now() WHERE valid_to IS NULL", (valid_from,)
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO layers.communes (code, name, short_name, name_en, level, province_code,
                           area_km2_official, valid_from, geom, load_id)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326), %s)""",
                    [
                        (
                            code, text("name", i), text("short_name", i) or _short(str(text("name", i))),
                            text("name_en", i), levels[i], text("province_code", i) or (prov[0] if prov else "33"),
                            float(text("area_km2_official", i) or "nan") if text("area_km2_official", i) else None,
                            valid_from, shapely.to_wkb(polys[i]), load_id,
                        )
                        for i, code in enumerate(codes)
                    ],
                )  # fmt: skip
            conn.execute(
                """UPDATE layers.communes SET area_km2 = round((ST_Area(geom::geography) / 1e6)::numeric, 3)
                    WHERE load_id = %s""",
                (load_id,),
            )
            conn.execute(
                """INSERT INTO layers.province (code, name, name_en, valid_from, geom, load_id, area_km2)
                   SELECT %s, %s, %s, %s, g, %s, round((ST_Area(g::geography) / 1e6)::numeric, 3)
                     FROM (SELECT ST_Multi(ST_Union(geom)) AS g FROM layers.communes WHERE load_id = %s) u""",
                (prov[0] if prov else "33", prov[1] if prov else "Tỉnh Hưng Yên", prov[2] if prov else None,
                 valid_from, load_id, load_id),
            )  # fmt: skip
            n_cross = _store_crosswalk(conn, cross, valid_from, notes)
            conn.execute(
                "UPDATE gis_ioc.loads SET status = 'done', finished_at = clock_timestamp(), row_count = %s "
                "WHERE id = %s",
                (len(codes), load_id),
            )
    except psycopg.Error as exc:
        raise LoadError(f"boundaries not loaded, nothing changed: {str(exc).strip().splitlines()[0]}") from exc
    return BoundaryVersion(load_id, valid_from, len(codes), closed, n_cross, notes)


def _store_crosswalk(
    conn: psycopg.Connection[Any], rows: list[dict[str, Any]], valid_from: date, notes: list[str]
) -> int:
    """Crosswalk rows with their area shares (file, else previous polygons on the ellipsoid, else even)."""
    by_old: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_old[row["old_code"]].append(row)
    even = []
    for old, targets in by_old.items():
        for row in targets:
            if row["merge_type"] == "full" and len(targets) == 1:
                row["area_share"] = row["area_share"] or 1.0
        if all(r["area_share"] is not None for r in targets):
            continue
        measured = conn.execute(
            """SELECT n.code,
                      ST_Area(ST_Intersection(o.geom, n.geom)::geography) / NULLIF(ST_Area(o.geom::geography), 0)
                 FROM layers.communes o JOIN layers.communes n ON n.valid_from = %s AND n.code = ANY(%s)
                WHERE o.code = %s AND o.valid_to = %s""",
            (valid_from, [r["new_code"] for r in targets], old, valid_from),
        ).fetchall()
        shares = {code: share for code, share in measured if share}
        total = sum(shares.values())
        for row in targets:
            if row["area_share"] is None:
                if shares and total > 0:
                    row["area_share"] = shares.get(row["new_code"], 0) / total or None
                else:
                    row["area_share"] = 1.0 / len(targets)
                    even.append(old)
    if even:
        notes.append(f"no polygon for former units {sorted(set(even))[:10]}: their figures are split evenly")
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO gis_ioc.commune_crosswalk (old_code, old_name, old_district, new_code, new_name, merge_type,
                   note, valid_from, area_share)
               SELECT %s,
                      coalesce(%s, (SELECT name FROM layers.communes WHERE code = %s AND valid_to = %s LIMIT 1), %s),
                      %s, %s, coalesce(%s, (SELECT name FROM layers.communes WHERE code = %s AND valid_from = %s)),
                      %s, %s, %s, %s""",
            [
                (r["old_code"], r.get("old_name") or None, r["old_code"], valid_from, r["old_code"],
                 r.get("old_district") or None, r["new_code"], r.get("new_name") or None, r["new_code"], valid_from,
                 r["merge_type"], r.get("note") or None, valid_from, r["area_share"])
                for r in rows
            ],
        )  # fmt: skip
    return len(rows)


def rekey(
    conn: psycopg.Connection[Any], values: Iterable[tuple[str, float]], *, as_of: date | None = None
) -> tuple[dict[str, float], list[str]]:
    """Figures keyed by former communes → keyed by the communes valid on ``as_of`` (default: today).

    A code that is current stays; a former one goes through the crosswalk, a partial merge split by
    area share (additive figures: counts, sums). Returns the totals and the codes that matched nothing.
    """
    day = as_of or date.today()
    current = {r[0] for r in conn.execute(
        "SELECT code FROM layers.communes WHERE valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)", (day, day)
    )}  # fmt: skip
    rows = conn.execute(
        """SELECT old_code, new_code, coalesce(area_share, CASE WHEN merge_type = 'full' THEN 1 END), valid_from
             FROM gis_ioc.commune_crosswalk WHERE valid_from <= %s ORDER BY valid_from""",
        (day,),
    ).fetchall()
    steps: dict[date, dict[str, list[tuple[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for old, new, share, since in rows:
        steps[since][old].append((new, share if share is not None else 0.0))
    for since, table in steps.items():  # partial rows without a share: split evenly
        for old, targets in table.items():
            if any(s == 0.0 for _, s in targets):
                table[old] = [(n, 1.0 / len(targets)) for n, _ in targets]
        del since
    out: dict[str, float] = defaultdict(float)
    unknown: list[str] = []
    for code, value in values:
        pending = {str(code).strip(): float(value)}
        for since in sorted(steps):
            moved: dict[str, float] = defaultdict(float)
            for c, v in pending.items():
                if c in steps[since]:
                    for new, share in steps[since][c]:
                        moved[new] += v * share
                else:
                    moved[c] += v
            pending = moved
        for c, v in pending.items():
            if c in current:
                out[c] += v
            else:
                unknown.append(c)
    return dict(out), sorted(set(unknown))
