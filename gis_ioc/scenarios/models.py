"""Scenario files (``config/scenarios/*.yaml``): which indicators and layers a sector looks at."""

from __future__ import annotations

from pathlib import Path

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


def load_scenarios(folder: Path, catalog: Catalog) -> dict[str, Scenario]:
    """Every scenario file, checked against the indicator and layer catalogs."""
    problems: list[str] = []
    scenarios: dict[str, Scenario] = {}
    known = {i.id for i in catalog.indicators.indicators}
    for path in sorted(folder.glob("*.yaml")):
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
