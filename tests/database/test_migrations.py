"""Migrations on an empty database, idempotence, catalog-driven additive changes, refused changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.database import migrations
from gis_ioc.database.connection import connect
from gis_ioc.errors import MigrationError
from gis_ioc.settings import PROJECT_ROOT, Settings
from tests.conftest import scalar


def test_upgrade_on_an_empty_database(empty_db: Settings, catalog: Catalog) -> None:
    with connect(empty_db, autocommit=True) as conn:
        assert migrations.pending(conn) == migrations.available()
        report = migrations.upgrade(conn, catalog)
        assert report.applied == [f"{m.version}_{m.name}" for m in migrations.available()]
        assert sorted(report.tables_created) == sorted(catalog.layers)
        assert migrations.current(conn)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'layers'").fetchall()}
        assert tables == set(catalog.layers)
        geom_types = dict(
            conn.execute("SELECT f_table_name, type FROM geometry_columns WHERE f_table_schema = 'layers'").fetchall()
        )
        assert geom_types == {lid: layer.geometry.upper() for lid, layer in catalog.layers.items()}
        assert scalar(conn, "SELECT count(*) FROM gis_ioc.indicators") == len(catalog.indicators.indicators)
        assert (
            scalar(
                conn,
                "SELECT target FROM gis_ioc.indicator_targets WHERE indicator_id = "
                "'health_insurance_coverage' AND period = '2026' AND commune_code = '11953'",
            )
            == 97.0
        )
        # key index: the official code is unique per version
        assert scalar(conn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'communes_key_idx'").endswith(
            "(code, valid_from) WHERE (approval = 'approved'::text)"
        )
        again = migrations.upgrade(conn, catalog)
        assert not again.changed


def _catalog_with(tmp_path: Path, layer: str, change: callable) -> Catalog:  # type: ignore[valid-type]
    for name in ("layers", "styles", "config"):
        shutil.copytree(PROJECT_ROOT / name, tmp_path / name, dirs_exist_ok=True)
    path = tmp_path / "layers" / f"{layer}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_catalog(tmp_path / "layers", tmp_path / "styles", tmp_path / "config")


def test_new_field_becomes_a_column_and_rows_are_kept(empty_db: Settings, catalog: Catalog, tmp_path: Path) -> None:
    with connect(empty_db, autocommit=True) as conn:
        migrations.upgrade(conn, catalog)
        conn.execute(
            "INSERT INTO layers.trees (tree_code, commune_code, geom) "
            "VALUES ('T1', '11953', ST_SetSRID(ST_Point(106.05, 20.65), 4326))"
        )
        grown = _catalog_with(
            tmp_path,
            "trees",
            lambda d: d["fields"].append(
                {"name": "canopy_m", "type": "number", "unit": "m", "title": {"vi": "Tán", "en": "Canopy"}}
            ),
        )
        report = migrations.upgrade(conn, grown)
        assert report.columns_added == ["trees.canopy_m"]
        assert scalar(conn, "SELECT count(*) FROM layers.trees WHERE canopy_m IS NULL") == 1


def test_changed_type_is_refused_and_nothing_changes(empty_db: Settings, catalog: Catalog, tmp_path: Path) -> None:
    with connect(empty_db, autocommit=True) as conn:
        migrations.upgrade(conn, catalog)
        changed = _catalog_with(tmp_path, "schools", lambda d: d["fields"][5].update(type="number"))  # pupils
        with pytest.raises(
            MigrationError, match="schools: pupils: integer in the database, double precision in the catalog"
        ):
            migrations.upgrade(conn, changed)
        assert (
            scalar(
                conn,
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                "'layers.schools'::regclass AND attname = 'pupils'",
            )
            == "integer"
        )


def test_an_edited_migration_is_detected(empty_db: Settings, catalog: Catalog) -> None:
    with connect(empty_db, autocommit=True) as conn:
        migrations.upgrade(conn, catalog)
        conn.execute("UPDATE gis_ioc.schema_migrations SET checksum = 'x' WHERE version = '0001'")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            migrations.upgrade(conn, catalog)
