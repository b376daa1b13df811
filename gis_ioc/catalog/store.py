"""Reading the catalog from disk, with every error reported at once, by file and place."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gis_ioc.catalog.indicators import IndicatorCatalog, load_indicators
from gis_ioc.catalog.models import Layer, Style
from gis_ioc.errors import CatalogError


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc


def _format_validation(path: Path, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        out.append(f"{path.name}: {where}: {err['msg']}")
    return out


def _load_dir[M: (Layer, Style)](folder: Path, model: type[M], problems: list[str]) -> dict[str, M]:
    items: dict[str, M] = {}
    if not folder.is_dir():
        problems.append(f"{folder}: folder missing")
        return items
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = read_yaml(path)
        except CatalogError as exc:
            problems.append(str(exc))
            continue
        try:
            item = model.model_validate(data)
        except ValidationError as exc:
            problems.extend(_format_validation(path, exc))
            continue
        item_id = item.id
        if path.stem != item_id:
            problems.append(f"{path.name}: id {item_id!r} differs from the file name")
            continue
        items[item_id] = item
    return items


@dataclass(frozen=True)
class Catalog:
    """The validated layers, styles and indicators."""

    layers: dict[str, Layer]
    styles: dict[str, Style]
    indicators: IndicatorCatalog
    source: dict[str, Path] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers.values())

    def layer(self, layer_id: str) -> Layer:
        try:
            return self.layers[layer_id]
        except KeyError:
            raise CatalogError(f"unknown layer {layer_id!r}; known: {', '.join(sorted(self.layers))}") from None

    def style_of(self, layer: Layer) -> Style:
        return self.styles[layer.style]


def _check_layer_indicators(indicators: IndicatorCatalog, layers: dict[str, Layer]) -> list[str]:
    problems = []
    for ind in indicators.indicators:
        agg = ind.aggregation
        if agg.kind == "sensor" and "iot_devices" not in layers:
            problems.append(f"indicators.yaml: {ind.id}: sensor indicators need the iot_devices layer")
        if agg.kind == "reach":
            origin = layers.get(agg.origin or "")
            if origin is None:
                problems.append(f"indicators.yaml: {ind.id}: unknown origin layer {agg.origin!r}")
            elif (weight := origin.field(agg.origin_weight or "")) is None or weight.type not in ("integer", "number"):
                problems.append(
                    f"indicators.yaml: {ind.id}: {agg.origin_weight!r} is not a number field of {origin.id}"
                )
        if agg.kind not in ("layer", "reach"):
            continue
        layer = layers.get(agg.layer or "")
        if layer is None:
            problems.append(f"indicators.yaml: {ind.id}: unknown layer {agg.layer!r}")
            continue
        if agg.field is not None:
            field = layer.field(agg.field)
            if field is None or field.type not in ("integer", "number"):
                problems.append(f"indicators.yaml: {ind.id}: {agg.field!r} is not a number field of {layer.id}")
        if agg.measure == "length" and "Line" not in layer.geometry:
            problems.append(f"indicators.yaml: {ind.id}: length needs a line layer, {layer.id} is not")
        if agg.measure == "area" and "Polygon" not in layer.geometry:
            problems.append(f"indicators.yaml: {ind.id}: area needs a polygon layer, {layer.id} is not")
        if agg.per == "capita" and not any(i.id == "population" for i in indicators.indicators):
            problems.append(f"indicators.yaml: {ind.id}: per capita needs the population indicator")
    return problems


def load_catalog(layers_dir: Path, styles_dir: Path, config_dir: Path) -> Catalog:
    """Read and validate everything; raise one :class:`CatalogError` listing every problem."""
    problems: list[str] = []
    layers = _load_dir(layers_dir, Layer, problems)
    styles = _load_dir(styles_dir, Style, problems)
    for layer in layers.values():
        style = styles.get(layer.style)
        if style is None:
            problems.append(f"{layer.id}.yaml: style {layer.style!r} has no file in {styles_dir}")
            continue
        if style.field is not None:
            target = layer.field(style.field)
            if target is None:
                problems.append(f"{layer.style}.yaml: field {style.field!r} is not a field of layer {layer.id}")
            elif target.values is not None:
                unknown = [c.value for c in style.classes if c.value not in target.codes]
                if unknown:
                    problems.append(f"{layer.style}.yaml: classes {unknown} are not allowed values of {style.field}")
    indicators = None
    try:
        indicators = load_indicators(config_dir / "indicators.yaml")
    except CatalogError as exc:
        problems.append(str(exc))
    if indicators is not None:
        problems.extend(_check_layer_indicators(indicators, layers))
    if not layers and not problems:
        problems.append(f"{layers_dir}: no layer files")
    if problems or indicators is None:
        raise CatalogError("The catalog does not validate:\n  " + "\n  ".join(problems))
    return Catalog(
        layers=layers, styles=styles, indicators=indicators, source={lid: layers_dir / f"{lid}.yaml" for lid in layers}
    )
