"""OGC API - Processes: every scenario, and the emergency scenario, as a pygeoapi process.

pygeoapi runs the jobs (synchronously, or asynchronously with ``Prefer: respond-async``) and keeps them
in PostGIS with its PostgreSQL job manager (table ``gis_ioc.jobs``, results as files under
``GIS_IOC_HOME/jobs``). The processors call the same functions as the CLI and the project's own HTTP API:
:func:`gis_ioc.scenarios.engine.run_scenario` and :func:`gis_ioc.scenarios.emergency.run_emergency`.
Their inputs are the JSON bodies of ``POST /api/scenarios/{id}/run`` and ``POST /api/emergency/run``.

Processes follow the caller as those routes do: the job manager (:class:`JobManager`) reads who asks
(the processors get no request) and hands the processor a :class:`~gis_ioc.query.viewer.Viewer`; the
result is trimmed for it (:func:`gis_ioc.scenarios.view.trim`: a commune officer's own communes,
totals only without an account, contacts only for leaders and administrators). Jobs belong to their caller.
A run refused (a bad input, a missing period) is reported in the language of the request that started it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from pygeoapi.process.base import BaseProcessor, JobNotFoundError, ProcessorExecuteError, ProcessorGenericError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.process.manager.postgresql import PostgreSQLManager
from pygeoapi.provider.sql import get_engine
from pygeoapi.util import (
    JobStatus,
    RequestedProcessExecutionMode,
    RequestedResponse,
    Subscriber,
    get_current_datetime,
)
from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    or_,
    text,
)
from sqlalchemy.orm import Session

from gis_ioc.auth.context import CURRENT
from gis_ioc.catalog import Catalog, load_catalog
from gis_ioc.catalog.indicators import PERIOD_RE
from gis_ioc.database.connection import connect, translate_errors
from gis_ioc.errors import DatabaseUnavailable, Forbidden, GisIocError, InvalidInput
from gis_ioc.maps import jobs
from gis_ioc.publish.provider import current_lang
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer
from gis_ioc.scenarios import selectors, view
from gis_ioc.scenarios.emergency import incident_from_request, run_emergency
from gis_ioc.scenarios.engine import run_scenario
from gis_ioc.scenarios.models import EmergencyScenario, Scenario, get_scenario, load_emergency, load_scenarios
from gis_ioc.settings import Settings

LOG = logging.getLogger(__name__)
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


@functools.cache
def jobs_table(schema: str, table_output: bool) -> Table:
    """pygeoapi's job model (:func:`pygeoapi.process.manager.postgresql.get_table_model`) with the job's
    owner, its shares and whether it was run with personal data (migration 0013)."""
    table = Table(
        "jobs",
        MetaData(),
        Column("identifier", String, primary_key=True, nullable=False),
        Column("type", String, nullable=False, server_default=text("'process'::character varying")),
        Column("process_id", String, nullable=False),
        Column("created", DateTime),
        Column("started", DateTime),
        Column("finished", DateTime),
        Column("updated", DateTime),
        Column("status", String, nullable=False),
        Column("location", String),
        Column("mimetype", String),
        Column("message", String),
        Column("progress", Integer, nullable=False),
        Column("owner", String),
        Column("shared_with", ARRAY(String), nullable=False, server_default=text("'{}'")),
        Column("personal", Boolean, nullable=False, server_default=text("false")),
        schema=schema,
    )
    if table_output:
        table.append_column(Column("output", LargeBinary))
    return table


def _caller() -> Viewer:
    """Who asks: pygeoapi calls the job manager from the request's context, with no request at hand."""
    return Viewer.of(CURRENT.get())


class JobManager(PostgreSQLManager):  # type: ignore[misc]
    """pygeoapi's PostgreSQL job manager, connecting on first use rather than when the API object is made,
    so that the server starts (and answers 503) while PostGIS is down.

    Jobs belong to the account that started them: the job list shows the caller's jobs (and those shared
    with the caller; every job to administrators), and another's job, its result and its deletion are
    answered 404 as if it did not exist. Each execution gets its own processor, given the caller as a
    :class:`Viewer` (pygeoapi's keeps one on the manager, which concurrent requests would share). A caller
    without an account runs synchronously: nobody could read a job of nobody's later.

    The table also holds the API's own jobs (exports, maps, reports: :mod:`gis_ioc.maps.jobs`); this
    manager lists and answers only ``type = 'process'``. Their retention sweep also runs from here."""

    _swept = 0.0  # when this process last swept (monotonic)

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
        self.retention_hours = float(manager_def.get("retention_hours", 24.0))

    @property
    def table_model(self) -> Any:
        return jobs_table(self.db_search_path[0], self.table_output)

    @property
    def c(self) -> Any:
        return self.table_model.c

    def execute_process(
        self,
        process_id: str,
        data_dict: dict[str, Any],
        execution_mode: RequestedProcessExecutionMode | None = None,
        requested_outputs: dict[str, Any] | None = None,
        subscriber: Subscriber | None = None,
        requested_response: str | None = RequestedResponse.raw.value,
    ) -> tuple[str, str, Any, JobStatus, dict[str, str] | None]:
        viewer = _caller()
        processor = self.get_processor(process_id)
        job_id = str(uuid.uuid4())
        processor.set_job_id(job_id)
        if isinstance(processor, ScenarioProcessor):
            processor.viewer = viewer
            processor.lang = current_lang()
        self.processor = processor  # pygeoapi's subscriber notifications read it
        headers: dict[str, str] | None
        if execution_mode == RequestedProcessExecutionMode.respond_async and not viewer.anonymous:
            handler, headers = self._execute_handler_async, {"Preference-Applied": execution_mode.value}
        else:
            handler = self._execute_handler_sync
            wait = RequestedProcessExecutionMode.wait
            headers = None if execution_mode == wait else {"Preference-Applied": wait.value}
        now = get_current_datetime()
        self._record_job(
            {
                "type": "process",
                "identifier": job_id,
                "process_id": process_id,
                "created": now,
                "started": now,
                "updated": now,
                "finished": None,
                "status": JobStatus.accepted.value,
                "location": None,
                "mimetype": "application/octet-stream",
                "message": "Job accepted and ready for execution",
                "progress": 5,
                "owner": viewer.username,
                "personal": viewer.personal,
            }
        )
        extra: dict[str, Any] = {"requested_response": requested_response}
        if self.supports_subscribing:
            extra["subscriber"] = subscriber
        mime_type, outputs, status = handler(processor, job_id, data_dict, requested_outputs, **extra)
        self._maybe_sweep()
        return job_id, mime_type, outputs, status, headers

    def _maybe_sweep(self) -> None:
        """Now and then, the jobs' retention sweep (:func:`gis_ioc.maps.jobs.sweep`: expired jobs of every
        type and their files), so that process results expire even where no export is ever asked."""
        if self.output_dir is None or time.monotonic() - JobManager._swept < jobs.SWEEP_SECONDS:
            return
        JobManager._swept = time.monotonic()
        home, hours = Path(self.output_dir).parent, float(self.retention_hours)

        def run() -> None:
            try:
                connection = self._engine.raw_connection()
                try:
                    cursor = connection.cursor()
                    jobs.sweep(cursor, home, hours)
                    connection.commit()
                finally:
                    connection.close()
            except Exception as exc:  # the next execution tries again
                LOG.warning("job retention sweep: %s", exc)

        threading.Thread(target=run, name="gis-ioc-job-sweep", daemon=True).start()

    def _record_job(self, job: dict[str, Any]) -> None:
        """pygeoapi's insert, with PostGIS unreachable answered 503 (it raises a generic error)."""
        try:
            self.add_job(job)
        except ProcessorGenericError as exc:
            raise DatabaseUnavailable(
                "PostGIS is unreachable: the job could not be recorded",
                vi="không kết nối được PostGIS: không ghi nhận được tác vụ (job)",
            ) from exc

    def get_jobs(
        self, status: JobStatus | None = None, limit: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        """The jobs the caller may see, newest first (a page of them: ``offset``, ``limit``)."""
        viewer = _caller()
        with Session(self._engine) as session:
            query = session.query(self.table_model).filter(self.c.type == "process")  # not exports, maps...
            if status is not None:
                query = query.filter(self.c.status == status.value)
            if not viewer.is_admin:  # only narrows the search: the rule is view.may_see, below
                mine = [self.c.owner == viewer.username] if viewer.username is not None else []
                query = query.filter(or_(*mine, func.cardinality(self.c.shared_with) > 0))
            rows = query.order_by(self.c.created.desc()).all()
        jobs = [r._asdict() for r in rows if view.may_see(viewer, r.owner, r.shared_with, r.personal)]
        start = offset or 0
        return {"jobs": jobs[start : None if limit is None else start + limit], "numberMatched": len(jobs)}

    def get_job(self, job_id: str) -> dict[str, Any]:
        """A job the caller may see (another's is answered as if it did not exist)."""
        job: dict[str, Any] = super().get_job(job_id)
        if job.get("type") != "process":  # the API's own jobs (exports, maps, reports) share the table
            raise JobNotFoundError()
        if not view.may_see(_caller(), job.get("owner"), job.get("shared_with"), bool(job.get("personal"))):
            raise JobNotFoundError()
        return job

    def delete_job(self, job_id: str) -> bool:
        """Dismiss a job: only the account that started it (or an administrator); 404 for a job the caller
        may not see, 403 for one only shared with the caller."""
        job = self.get_job(job_id)
        if not _caller().owns(job.get("owner")):
            raise Forbidden(
                "only the account that started a job dismisses it",
                vi="chỉ tài khoản đã khởi chạy tác vụ (job) mới hủy được tác vụ đó",
            )
        return bool(super().delete_job(job_id))

    def get_job_result(self, job_id: str) -> tuple[Any, ...]:
        """A job's result (of a job the caller may see), as the caller may see it."""
        result: tuple[Any, ...] = super().get_job_result(job_id)
        if len(result) == 2 and isinstance(result[1], dict):
            return result[0], _trimmed(_caller(), result[1])
        return result


def _trimmed(viewer: Viewer, output: dict[str, Any]) -> dict[str, Any]:
    """A job's output as the viewer sees it: a run, or pygeoapi's document of runs."""
    if isinstance(output.get("outputs"), list):
        return {**output, "outputs": [view.trim(viewer, o) if isinstance(o, dict) else o for o in output["outputs"]]}
    return view.trim(viewer, output)


def process_manager(settings: Settings, connection: dict[str, Any]) -> dict[str, Any]:
    """The job manager, in our database (table gis_ioc.jobs, migrations 0005, 0013, 0016); finished jobs
    and their results are kept for ``GIS_IOC_JOB_RETENTION_HOURS``."""
    (settings.home / "jobs").mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        "name": f"{__name__}.JobManager",
        "connection": {**connection, "search_path": ["gis_ioc"]},
        "output_dir": str(settings.home / "jobs"),
        "retention_hours": settings.job_retention_hours,
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
        #: Who runs it: set by the job manager for each execution (nobody's until then: totals only).
        self.viewer: Viewer = Viewer.ANONYMOUS
        #: The language of the request that started it (``vi`` or ``en``): a refused run's message.
        self.lang = "vi"
        if self.scenario_id == "emergency":
            self.emergency = load_emergency(folder, self.catalog)
            metadata = emergency_metadata(self.emergency)
        else:
            self.scenario = get_scenario(load_scenarios(folder, self.catalog), self.scenario_id)
            metadata = scenario_metadata(self.scenario)
        super().__init__(processor_def, metadata)

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None) -> tuple[str, Any]:
        """Run the scenario for the caller the job manager gave (:attr:`viewer`), in one transaction bound
        to it (figures over every row), and answer the result as the caller may see it."""
        viewer = self.viewer
        try:
            with translate_errors(), connect(self.settings, server=True) as conn, conn.transaction():
                scope.bind(conn, viewer, self.catalog, "aggregate")
                run = self._run(conn, data, viewer)
        except GisIocError as exc:  # pygeoapi shows the message as written: in the caller's language
            raise ProcessorExecuteError(exc.text(self.lang)) from None
        return "application/json", _jsonable(view.trim(viewer, run))

    def _run(self, conn: psycopg.Connection[Any], data: dict[str, Any], viewer: Viewer) -> dict[str, Any]:
        threshold = self.settings.privacy_threshold
        if self.emergency is not None:
            incident = incident_from_request(conn, data, self.emergency, self.catalog, viewer)
            return run_emergency(
                conn, self.catalog, self.emergency, incident, viewer=viewer, privacy_threshold=threshold
            ).as_dict()
        assert self.scenario is not None
        period = data.get("period")
        if not isinstance(period, str):
            raise InvalidInput("period is required, e.g. 2026-Q3", vi="thiếu period (kỳ phân tích), ví dụ 2026-Q3")
        body = {k: v for k, v in data.items() if k != "period"}
        selection = selectors.from_request(conn, body, self.catalog, viewer)
        return run_scenario(
            conn, self.catalog, self.scenario, selection, period, viewer=viewer, privacy_threshold=threshold
        ).as_dict()

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
