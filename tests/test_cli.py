"""The command line: the documented commands work, and errors are one clear line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pygeoapi.config import validate_config

from gis_ioc.cli import main
from gis_ioc.demo import DemoResult
from gis_ioc.settings import PROJECT_ROOT, Settings

GIS_IOC = Path(sys.executable).parent / "gis-ioc"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIS_IOC_")}
    env.update(
        {
            "GIS_IOC_HOME": str(settings.home),
            "GIS_IOC_DB_PORT": str(settings.db_port),
            "GIS_IOC_DB_NAME": settings.db_name,
            **extra,
        }
    )
    return env


def _run(settings: Settings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GIS_IOC), *args], env=_env(settings, **extra), capture_output=True, text=True, timeout=300, check=False
    )


def test_db_status_reports_the_running_cluster(settings: Settings, loaded: DemoResult) -> None:
    result = _run(settings, "db", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["running"] is True and status["port"] == settings.db_port
    assert status["migrations_pending"] == []
    assert status["data_dir"] == str(settings.home / "postgres")


def test_db_upgrade_and_boundaries_and_demo_are_idempotent(settings: Settings, loaded: DemoResult) -> None:
    assert "schema is current" in _run(settings, "db", "upgrade").stderr
    assert "already loaded (104 communes)" in _run(settings, "boundaries", "load").stderr
    demo = _run(settings, "demo", "--as-of", "2026-11-27")
    assert demo.returncode == 0 and "already present" in demo.stderr


def test_config_render_writes_a_valid_private_file(settings: Settings, loaded: DemoResult, tmp_path: Path) -> None:
    target = tmp_path / "pygeoapi.yml"
    result = _run(settings, "config", "render", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert "18 collections, 8 processes, valid" in result.stderr
    config = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert validate_config(config)
    assert target.stat().st_mode & 0o077 == 0  # it holds the database connection


def test_catalog_commands() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["catalog", "validate"])
    indicators = len(yaml.safe_load((PROJECT_ROOT / "config" / "indicators.yaml").read_text())["indicators"])
    assert indicators >= 27  # the catalog's, sensors and citizen reports included
    assert result.exit_code == 0 and f"18 layers, 18 styles, {indicators} indicators" in result.output
    listing = runner.invoke(main, ["catalog", "list"])
    assert "land_parcels" in listing.output and "Sở Nông nghiệp và Môi trường" in listing.output


def test_a_broken_catalog_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: bad\n", encoding="utf-8")
    result = _run(settings, "catalog", "validate", GIS_IOC_LAYERS_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "bad.yaml: title: Field required" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_commands_refuse_when_an_external_database_is_configured(settings: Settings) -> None:
    result = _run(settings, "db", "init", GIS_IOC_DATABASE_URL="postgresql://x@127.0.0.1:1/x")
    assert result.returncode == 2 and "manages no cluster" in result.stderr


def test_unreachable_database_is_one_clear_error(settings: Settings) -> None:
    result = _run(settings, "db", "upgrade", GIS_IOC_DATABASE_URL="postgresql://x@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "PostGIS is unreachable" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["--help"], ["db", "--help"], ["demo", "--help"], ["serve", "--help"]])
def test_help(command: list[str]) -> None:
    assert CliRunner().invoke(main, command).exit_code == 0


def test_scenario_commands(settings: Settings, loaded: DemoResult, tmp_path: Path) -> None:
    run = _run(settings, "scenario", "run", "health", "--commune", "11953", "--period", "2026-Q3", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["selection"] == {"kind": "communes", "codes": ["11953"]} and result["id"] > 0
    assert {i["id"] for i in result["indicators"]} >= {"hospital_beds_per_10k", "doctors_per_10k"}
    emergency = _run(settings, "scenario", "emergency", "--incident", "flood", "--at", "106.05,20.65", "--json")
    assert emergency.returncode == 0, emergency.stderr
    answer = json.loads(emergency.stdout)
    assert [r["label"] for r in answer["rings"]] == ["0–500 m", "500–1000 m", "1000–2000 m"]
    assert answer["nearest"]["hospitals"] and answer["communes"][0]["contacts"]
    zone = tmp_path / "flood.geojson"
    box = [[106.03, 20.63], [106.07, 20.63], [106.07, 20.67], [106.03, 20.67], [106.03, 20.63]]
    zone.write_text(
        json.dumps({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [box]}})
    )
    table = _run(settings, "scenario", "emergency", "--incident", "flood", "--zone", str(zone))
    assert table.returncode == 0 and "zone" in table.stdout and "shelters: capacity" in table.stdout
    bad = _run(settings, "scenario", "emergency", "--incident", "fire", "--at", "106.05,20.65", "--rings", "900,300")
    assert bad.returncode == 1 and "rings must ascend" in bad.stderr and "Traceback" not in bad.stderr


def test_loader_refusals_are_vietnamese_first(settings: Settings, loaded: DemoResult) -> None:
    """Issue 16: a refused command says what is wrong in Vietnamese; `--lang en` in English; one line."""
    file = str(PROJECT_ROOT / "boundaries" / "hung_yen_2025_province.geojson")
    vi = _run(settings, "load", "vector", file, "--layer", "nope")
    said = vi.stdout + vi.stderr
    assert vi.returncode == 1 and "không có lớp 'nope'" in said and "Traceback" not in said
    en = _run(settings, "load", "vector", file, "--layer", "nope", "--lang", "en")
    assert en.returncode == 1 and "unknown layer 'nope'" in en.stdout + en.stderr
