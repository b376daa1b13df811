"""The layer catalog: the shipped files validate, and bad files are refused with the place named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.catalog.ddl import column_types
from gis_ioc.errors import CatalogError
from gis_ioc.settings import PROJECT_ROOT

REQUIRED_LAYERS = {
    # administrative
    "province": "MultiPolygon",
    "communes": "MultiPolygon",
    # land and housing
    "land_parcels": "MultiPolygon",
    "buildings": "MultiPolygon",
    # urban technical infrastructure
    "roads": "MultiLineString",
    "power_lines": "MultiLineString",
    "power_substations": "Point",
    "water_pipes": "MultiLineString",
    "drainage": "MultiLineString",
    "schools": "Point",
    "health_facilities": "Point",
    "police_posts": "Point",
    "fire_stations": "Point",
    "trees": "Point",
    "green_spaces": "MultiPolygon",
    "shelters": "Point",
    # planning and IoT
    "planning_zones": "MultiPolygon",
    "iot_devices": "Point",
}


def test_shipped_catalog_has_every_required_layer(catalog: Catalog) -> None:
    assert {lid: layer.geometry for lid, layer in catalog.layers.items()} == REQUIRED_LAYERS


def test_layers_carry_what_the_issue_asks(catalog: Catalog) -> None:
    parcels = catalog.layer("land_parcels")
    for name in ("land_use", "area_m2", "land_price", "legal_status", "planned_use"):
        assert parcels.field(name) is not None, name
    assert parcels.no_overlap and parcels.key == "parcel_code"
    assert parcels.field("area_m2").unit == "m2"  # type: ignore[union-attr]
    assert "LUC" in parcels.field("land_use").codes  # type: ignore[union-attr]
    buildings = catalog.layer("buildings")
    assert {"building_type", "floors", "households"} <= {f.name for f in buildings.fields}
    planning = catalog.layer("planning_zones")
    assert {"plan_name", "plan_level", "decision_number", "approval_date", "zoning"} <= {
        f.name for f in planning.fields
    }
    assert planning.field("plan_level").codes == ("master", "zoning", "detailed")  # type: ignore[union-attr]
    assert planning.temporal == "approval_date"
    assert set(catalog.layer("iot_devices").field("kind").codes) == {  # type: ignore[union-attr]
        "camera",
        "air_quality",
        "water_level",
        "rain_gauge",
    }
    communes = catalog.layer("communes")
    assert communes.versioned and communes.key == "code"


def test_every_layer_has_bilingual_titles_owner_and_style(catalog: Catalog) -> None:
    for layer in catalog:
        assert layer.title.vi and layer.title.en
        assert layer.owner_unit.vi and layer.owner_unit.en
        assert catalog.style_of(layer).id == layer.style
        for f in layer.fields:
            assert f.title.vi and f.title.en, f"{layer.id}.{f.name}"


def test_versioned_layers_get_validity_columns(catalog: Catalog) -> None:
    cols = column_types(catalog.layer("communes"))
    assert cols["valid_from"] == "date" and cols["valid_to"] == "date"
    assert cols["geom"] == "geometry(MultiPolygon,4326)"
    assert "valid_from" not in column_types(catalog.layer("schools"))


def test_indicators_have_unit_sector_direction_and_targets(catalog: Catalog) -> None:
    indicators = catalog.indicators.indicators
    assert len(indicators) >= 12
    sectors = {i.sector for i in indicators}
    assert {"health", "education", "transport", "environment", "public_order", "social_welfare"} <= sectors
    with_targets = [i for i in indicators if i.targets]
    assert len(with_targets) >= 10
    assert {i.direction for i in indicators} == {"higher", "lower"}


def test_target_lookup_quarter_year_and_commune(catalog: Catalog) -> None:
    coverage = catalog.indicators.get("health_insurance_coverage")
    assert coverage.target_for("2026-Q3") == 95.0  # the year's target applies to its quarters
    assert coverage.target_for("2026-Q3", "11953") == 97.0  # Phố Hiến has its own
    assert coverage.target_for("2026-Q3", "12007") == 95.0
    assert coverage.target_for("2025-Q4") == 93.5
    assert coverage.target_for("2019") is None
    with pytest.raises(ValueError, match="2026-Q5"):
        coverage.target_for("2026-Q5")


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    for name in ("layers", "styles", "config"):
        shutil.copytree(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


def _load(root: Path) -> Catalog:
    return load_catalog(root / "layers", root / "styles", root / "config")


def _edit(path: Path, change: callable) -> None:  # type: ignore[valid-type]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_unknown_field_type_is_named(catalog_copy: Path) -> None:
    _edit(catalog_copy / "layers" / "schools.yaml", lambda d: d["fields"][2].update(type="varchar"))
    with pytest.raises(CatalogError) as err:
        _load(catalog_copy)
    assert "schools.yaml: fields.2.type" in str(err.value)


def test_reserved_column_name_is_refused(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "layers" / "trees.yaml",
        lambda d: d["fields"].append({"name": "geom", "type": "text", "title": {"vi": "x", "en": "x"}}),
    )
    with pytest.raises(CatalogError, match="reserved"):
        _load(catalog_copy)


def test_key_must_be_a_field_and_style_must_exist(catalog_copy: Path) -> None:
    _edit(catalog_copy / "layers" / "roads.yaml", lambda d: d.update(key="nope", style="missing_style"))
    with pytest.raises(CatalogError) as err:
        _load(catalog_copy)
    assert "key 'nope' is not one of its fields" in str(err.value)


def test_style_classes_must_be_allowed_values(catalog_copy: Path) -> None:
    _edit(
        catalog_copy / "styles" / "schools.yaml",
        lambda d: d["classes"].append({"value": "university", "fill": "#000000"}),
    )
    with pytest.raises(CatalogError, match="university"):
        _load(catalog_copy)


def test_file_name_must_match_id_and_yaml_must_parse(catalog_copy: Path) -> None:
    (catalog_copy / "layers" / "broken.yaml").write_text("id: [unclosed", encoding="utf-8")
    shutil.copy(catalog_copy / "layers" / "trees.yaml", catalog_copy / "layers" / "trees2.yaml")
    with pytest.raises(CatalogError) as err:
        _load(catalog_copy)
    text = str(err.value)
    assert "broken.yaml: not valid YAML" in text
    assert "trees2.yaml: id 'trees' differs from the file name" in text


def test_indicator_errors_are_named(catalog_copy: Path) -> None:
    def change(d: dict) -> None:  # type: ignore[type-arg]
        d["indicators"][2]["direction"] = "up"
        d["indicators"][3]["targets"]["2026-Q7"] = {"province": 1}

    _edit(catalog_copy / "config" / "indicators.yaml", change)
    with pytest.raises(CatalogError) as err:
        _load(catalog_copy)
    assert "indicators.2.direction" in str(err.value)
    assert "2026-Q7" in str(err.value)


def test_dated_limits_are_data() -> None:
    """QCVN 05:2023/BTNMT: PM2.5's 24-hour limit is 50 µg/m³ until 31/12/2025 and 45 µg/m³ from 01/01/2026."""
    from datetime import date

    from gis_ioc.catalog.indicators import Aggregation, load_indicators

    indicators = load_indicators(PROJECT_ROOT / "config" / "indicators.yaml")
    agg = indicators.get("pm25_days_over_limit").aggregation
    assert agg.limit_on(date(2025, 12, 31)) == 50 and agg.limit_on(date(2026, 1, 1)) == 45
    with pytest.raises(ValueError, match="same day"):
        Aggregation.model_validate(
            {
                "kind": "sensor",
                "quantity": "pm25",
                "statistic": "days_over",
                "limits": [
                    {"from": "2026-01-01", "value": 45, "source": "a"},
                    {"from": "2026-01-01", "value": 40, "source": "b"},
                ],
            }
        )
    with pytest.raises(ValueError, match="not both"):
        Aggregation.model_validate(
            {
                "kind": "sensor",
                "quantity": "pm25",
                "statistic": "days_over",
                "threshold": 50,
                "limits": [{"from": "2026-01-01", "value": 45, "source": "a"}],
            }
        )
