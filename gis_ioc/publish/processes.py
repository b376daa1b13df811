"""OGC API - Processes: every scenario, and the emergency scenario, as a pygeoapi process.

pygeoapi runs the jobs (synchronously, or asynchronously with ``Prefer: respond-async``) and keeps them
in PostGIS with its PostgreSQL job manager (table ``gis_ioc.jobs``, results as files under
``GIS_IOC_HOME/jobs``). The processors call the same functions as the CLI and the project's own HTTP API:
:func:`gis_ioc.scenarios.engine.run_scenario` and :func:`gis_ioc.scenarios.emergency.run_emergency`.
Their inputs are the JSON bodies of ``POST /api/scenarios/{id}/run`` and ``POST /api/emergency/run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.process.manager.postgresql import PostgreSQLManager, get_table_model
from pygeoapi.provider.sql import get_engine

from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.database.connection import connect, translate_errors
from gis_ioc.errors import GisIocError
from gis_ioc.scenarios import selectors
from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
from gis_ioc.scenarios.engine import run_scenario
from gis_ioc.scenarios.models import EmergencyScenario, Scenario, get_scenario, load_emergency, load_scenarios
from gis_ioc.settings import Settings

PROCESSOR = f"{__name__}.ScenarioProcessor"
_CONTROL = ["sync-execute", "async-execute"]
_RESULT = {
    "result": {
        "title": {"vi": "Kết quả", "en": "Result"},
        "description": "The run, as POST /api/scenarios/{id}/run or /api/emergency/run answers it",
        "schema": {"type": "object", "contentMediaType": "application/json"},
    }
}


def _input(title: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "schema": schema,
        "minOccurs": 1 if required else 0,
        "maxOccurs": 1,
    }


_XY = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_CRS = _input("CRS", "CRS of the coordinates (default CRS84 lon,lat; e.g. EPSG:9209 VN-2000)", {"type": "string"})


def _described(scenario: Scenario | EmergencyScenario, keywords: list[str]) -> dict[str, Any]:
    return {
        "version": "1.0.0",
        "id": scenario.id,
        "title": {"vi": scenario.title.vi, "en": scenario.title.en},
        "description": {"vi": scenario.description.vi, "en": scenario.description.en},
        "jobControlOptions": _CONTROL,
        "keywords": keywords,
        "links": [],
        "outputs": _RESULT,
    }


def scenario_metadata(scenario: Scenario) -> dict[str, Any]:
    return {
        **_described(scenario, ["scenario", scenario.id, *scenario.indicators]),
        "inputs": {
            "period": _input("Period", "YYYY-Qn or YYYY", {"type": "string", "pattern": PERIOD_RE.pattern}, True),
            "point": _input("Point", "[x, y]: the commune containing it", _XY),
            "radius": _input(
                "Radius",
                '{"at": [x, y], "metres": m}, metres on the ground, at most 50 km',
                {"type": "object", "required": ["at", "metres"]},
            ),
            "zone": _input("Zone", 'A GeoJSON polygon, or "layer:fid"', {"type": ["object", "string"]}),
            "communes": _input("Communes", "Commune codes", {"type": "array", "items": {"type": "string"}}),
            "province": _input("Province", "true: the whole province", {"type": "boolean"}),
            "crs": _CRS,
        },
        "example": {"inputs": {"period": "2026-Q3", "radius": {"at": [106.05, 20.65], "metres": 2000}}},
    }


def emergency_metadata(scenario: EmergencyScenario) -> dict[str, Any]:
    return {
        **_described(scenario, ["emergency", *scenario.incidents]),
        "inputs": {
            "incident": _input("Incident", "What happened", {"type": "string", "enum": list(scenario.incidents)}, True),
            "at": _input("At", "[x, y] of the incident (rings around it)", _XY),
            "rings": _input(
                "Rings",
                f"Radii in metres, ascending (default {', '.join(f'{r:g}' for r in scenario.rings)})",
                {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 6},
            ),
            "zone": _input("Zone", 'Instead of at: the flooded polygon (GeoJSON) or "layer:fid"', {"type": "object"}),
            "crs": _CRS,
        },
        "example": {"inputs": {"incident": "flood", "at": [106.05, 20.65], "rings": [500, 1000, 2000]}},
    }


#: Settings of the applications in this process, by key: processors made by pygeoapi inside a server
#: find the settings of the server that configured them (a standalone pygeoapi reads the environment).
_SETTINGS: dict[str, Settings] = {}


def register(settings: Settings) -> str:
    key = f"{settings.home}|{settings.db_name}|{settings.db_port}"
    _SETTINGS[key] = settings
    return key


def process_resources(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    """The process resources of the pygeoapi configuration: one per scenario."""
    folder = settings.config_dir / "scenarios"
    names = [*load_scenarios(folder, catalog), load_emergency(folder, catalog).id]
    return {
        f"scenario-{name}": {"type": "process", "processor": {"name": PROCESSOR, "scenario": name}} for name in names
    }


class JobManager(PostgreSQLManager):  # type: ignore[misc]
    """pygeoapi's PostgreSQL job manager, connecting on first use rather than when the API object is made,
    so that the server starts (and answers 503) while PostGIS is down."""

    def __init__(self, manager_def: dict[str, Any]) -> None:
        BaseManager.__init__(self, manager_def)
        self.is_async = True
        self.id_field = "identifier"
        self.supports_subscribing = True
        self.connection = manager_def["connection"]
        self._store_db_parameters(manager_def["connection"], dict(manager_def.get("options", {})))
        self._engine = get_engine(
            "postgresql+psycopg2",
            self.db_host,
            self.db_port,
            self.db_name,
            self.db_user,
            self._db_password,
            self.db_conn,
            **self.db_options,
        )
        self.table_output = self.output_dir is None

    @property
    def table_model(self) -> Any:
        return get_table_model(self.db_search_path, self._engine, self.table_output)

    @property
    def c(self) -> Any:
        return self.table_model.c


def process_manager(settings: Settings, connection: dict[str, Any]) -> dict[str, Any]:
    """The job manager, in our database (table gis_ioc.jobs, migration 0005)."""
    (settings.home / "jobs").mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        "name": f"{__name__}.JobManager",
        "connection": {**connection, "search_path": ["gis_ioc"]},
        "output_dir": str(settings.home / "jobs"),
    }


class ScenarioProcessor(BaseProcessor):  # type: ignore[misc]
    """One scenario (``processor.scenario`` in the configuration) as an OGC API process."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        self.settings = _SETTINGS.get(str(processor_def.get("settings"))) or Settings()
        self.catalog = load_catalog(self.settings.layers_dir, self.settings.styles_dir, self.settings.config_dir)
        folder = self.settings.config_dir / "scenarios"
        self.scenario_id = str(processor_def["scenario"])
        self.emergency: EmergencyScenario | None = None
        self.scenario: Scenario | None = None
        if self.scenario_id == "emergency":
            self.emergency = load_emergency(folder, self.catalog)
            metadata = emergency_metadata(self.emergency)
        else:
            self.scenario = get_scenario(load_scenarios(folder, self.catalog), self.scenario_id)
            metadata = scenario_metadata(self.scenario)
        super().__init__(processor_def, metadata)

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None) -> tuple[str, Any]:
        try:
            with translate_errors(), connect(self.settings, autocommit=True) as conn:
                if self.emergency is not None:
                    incident = incident_from_request(conn, data, self.emergency, self.catalog)
                    run = run_emergency(
                        conn,
                        self.catalog,
                        self.emergency,
                        incident,
                        privacy_threshold=self.settings.privacy_threshold,
                    ).as_dict()
                else:
                    assert self.scenario is not None
                    period = data.get("period")
                    if not isinstance(period, str):
                        raise ProcessorExecuteError("period is required, e.g. 2026-Q3")
                    body = {k: v for k, v in data.items() if k != "period"}
                    selection = selectors.from_request(conn, body, self.catalog)
                    run = run_scenario(
                        conn,
                        self.catalog,
                        self.scenario,
                        selection,
                        period,
                        privacy_threshold=self.settings.privacy_threshold,
                    ).as_dict()
        except GisIocError as exc:
            raise ProcessorExecuteError(str(exc)) from None
        return "application/json", _jsonable(run)

    def __repr__(self) -> str:
        return f"<ScenarioProcessor> {self.scenario_id}"


def _jsonable(value: Any) -> Any:
    """Dates and paths as strings, so pygeoapi can write the result as JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path) or hasattr(value, "isoformat"):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    return value
