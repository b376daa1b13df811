"""Scenario files (``config/scenarios/*.yaml``): which indicators and layers a sector looks at."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gis_ioc.catalog import Catalog
from gis_ioc.catalog.models import Identifier, Text
from gis_ioc.catalog.store import read_yaml
from gis_ioc.errors import CatalogError, NotFound


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    title: Text
    description: Text
    indicators: tuple[Identifier, ...] = Field(min_length=1)
    layers: tuple[Identifier, ...] = ()


IncidentKind = Literal["flood", "fire", "epidemic", "environment", "rescue"]
INCIDENTS: tuple[IncidentKind, ...] = ("flood", "fire", "epidemic", "environment", "rescue")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InsideLayer(_Config):
    """A layer whose features inside the incident zone are listed, with these fields."""

    layer: Identifier
    fields: tuple[Identifier, ...] = ()


class NearestLayer(_Config):
    """The ``count`` nearest features of a layer (matching ``filter``, cql2-text), with their distance."""

    id: Identifier
    title: Text
    layer: Identifier
    filter: str | None = None
    count: int = Field(default=3, ge=1, le=20)
    fields: tuple[Identifier, ...] = ()


class ShelterRule(_Config):
    """Which shelters take the exposed people: those within ``search_m`` of the incident zone and
    outside it, or inside it when the incident is a flood and the shelter is safe in floods."""

    layer: Identifier = "shelters"
    capacity: Identifier = "capacity"
    flood_safe: Identifier = "flood_safe"
    search_m: float = Field(default=10_000, gt=0, le=50_000)


class EmergencyScenario(_Config):
    """``config/scenarios/emergency.yaml``: what the emergency scenario looks at."""

    id: Literal["emergency"]
    kind: Literal["emergency"]
    title: Text
    description: Text
    incidents: tuple[IncidentKind, ...] = INCIDENTS
    rings: tuple[float, ...] = Field(default=(500, 1000, 2000), min_length=1, max_length=6)
    inside: tuple[InsideLayer, ...] = ()
    nearest: tuple[NearestLayer, ...] = ()
    shelters: ShelterRule = ShelterRule()


def load_emergency(folder: Path, catalog: Catalog) -> EmergencyScenario:
    """The emergency scenario's file, checked against the layer catalog."""
    path = folder / "emergency.yaml"
    try:
        scenario = EmergencyScenario.model_validate(read_yaml(path))
    except ValidationError as exc:
        lines = [f"{path.name}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise CatalogError("The emergency scenario does not validate:\n  " + "\n  ".join(lines)) from exc
    problems = []
    if list(scenario.rings) != sorted(set(scenario.rings)) or scenario.rings[0] <= 0:
        problems.append(f"{path.name}: rings must be positive and ascending")
    used = [
        *((i.layer, i.fields) for i in scenario.inside),
        *((n.layer, n.fields) for n in scenario.nearest),
        (scenario.shelters.layer, (scenario.shelters.capacity, scenario.shelters.flood_safe)),
    ]
    for layer_id, fields in used:
        layer = catalog.layers.get(layer_id)
        if layer is None:
            problems.append(f"{path.name}: unknown layer {layer_id!r}")
        elif unknown := [f for f in fields if layer.field(f) is None]:
            problems.append(f"{path.name}: {layer_id} has no fields {unknown}")
    if problems:
        raise CatalogError("The emergency scenario does not validate:\n  " + "\n  ".join(problems))
    return scenario


def load_scenarios(folder: Path, catalog: Catalog) -> dict[str, Scenario]:
    """Every sector scenario file (all but ``emergency.yaml``), checked against the catalogs."""
    problems: list[str] = []
    scenarios: dict[str, Scenario] = {}
    known = {i.id for i in catalog.indicators.indicators}
    for path in sorted(folder.glob("*.yaml")):
        if path.stem == "emergency":
            continue
        try:
            scenario = Scenario.model_validate(read_yaml(path))
        except ValidationError as exc:
            problems.extend(f"{path.name}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            continue
        except CatalogError as exc:
            problems.append(str(exc))
            continue
        if scenario.id != path.stem:
            problems.append(f"{path.name}: id {scenario.id!r} differs from the file name")
        if unknown := [i for i in scenario.indicators if i not in known]:
            problems.append(f"{path.name}: unknown indicators {unknown}")
        if unknown := [lid for lid in scenario.layers if lid not in catalog.layers]:
            problems.append(f"{path.name}: unknown layers {unknown}")
        scenarios[scenario.id] = scenario
    if problems:
        raise CatalogError("The scenarios do not validate:\n  " + "\n  ".join(problems))
    return scenarios


def get_scenario(scenarios: dict[str, Scenario], scenario_id: str) -> Scenario:
    try:
        return scenarios[scenario_id]
    except KeyError:
        raise NotFound(f"no scenario {scenario_id!r}; known: {', '.join(sorted(scenarios))}") from None
