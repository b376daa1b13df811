"""Pydantic models of a layer file and a style file.

A layer file says everything about a layer once: from it come the table, the OGC collection, its
queryables, the loader's validation rules, the export schema and the map legend.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PydanticField

Identifier = Annotated[str, PydanticField(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
HexColor = Annotated[str, PydanticField(pattern=r"^#[0-9a-fA-F]{6}$")]

#: Columns every layer table has; a layer's own fields may not use these names.
SYSTEM_COLUMNS = (
    "fid",
    "geom",
    "is_demo",
    "load_id",
    "approval",
    "valid_from",
    "valid_to",
    "updated_at",
    "sys_from",
    "sys_to",
)

FieldType = Literal["text", "integer", "number", "boolean", "date", "datetime"]
GeometryType = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]
Group = Literal["administrative", "land", "housing", "infrastructure", "planning", "iot"]
Access = Literal["public", "internal", "restricted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A text in Vietnamese (the default language) and English."""

    vi: str = PydanticField(min_length=1)
    en: str = PydanticField(min_length=1)


class AllowedValue(_Strict):
    code: str | int
    label: Text
    #: Other ways people write it (abbreviations such as THCS), matched like the labels when loading.
    synonyms: tuple[str, ...] = ()


class Field(_Strict):
    name: Identifier
    type: FieldType
    title: Text
    description: Text | None = None
    unit: str | None = None
    required: bool = False
    values: tuple[AllowedValue, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    personal: bool = False
    #: Other headers a file may give this field (``Số thửa``, ``SHTHUA``), matched like the titles when loading.
    synonyms: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Field:
        if self.name in SYSTEM_COLUMNS:
            raise ValueError(f"field name {self.name!r} is reserved for a system column ({', '.join(SYSTEM_COLUMNS)})")
        if self.values is not None:
            codes = [v.code for v in self.values]
            if len(set(codes)) != len(codes):
                raise ValueError(f"field {self.name}: allowed values repeat")
            expected = int if self.type == "integer" else str
            bad = [c for c in codes if not isinstance(c, expected)]
            if bad or self.type not in ("text", "integer"):
                raise ValueError(f"field {self.name}: allowed values must be of the field's type (text or integer)")
        if (self.minimum is not None or self.maximum is not None) and self.type not in ("integer", "number"):
            raise ValueError(f"field {self.name}: minimum/maximum apply to numbers only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"field {self.name}: minimum is above maximum")
        return self

    @property
    def codes(self) -> tuple[str | int, ...]:
        return tuple(v.code for v in self.values or ())


class Live(_Strict):
    """Read-only fields computed by a view of schema ``gis_ioc`` (``source``) joined on the layer's key: they
    are served with the layer's features (OGC items, single features, queryables, filters and sorting) but
    are no columns of its table, so loaders, edits, tiles and exports never see them."""

    source: Identifier
    fields: tuple[Field, ...] = PydanticField(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Live:
        for f in self.fields:
            if f.required or f.personal or f.synonyms:
                raise ValueError(f"live field {f.name}: computed fields cannot be required, personal or have synonyms")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("live field names repeat")
        return self


class Paging(_Strict):
    default_limit: int = PydanticField(default=10, ge=1)
    max_limit: int = PydanticField(default=1000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Paging:
        if self.default_limit > self.max_limit:
            raise ValueError("paging.default_limit is above paging.max_limit")
        return self


class Layer(_Strict):
    id: Identifier
    title: Text
    description: Text
    group: Group
    geometry: GeometryType
    fields: tuple[Field, ...] = PydanticField(min_length=1)
    key: Identifier | None = None
    access: Access
    owner_unit: Text
    freshness_days: int = PydanticField(ge=1, description="Data older than this is stale.")
    keywords: tuple[str, ...] = ()
    license: str = "CC-BY-4.0"
    style: Identifier
    temporal: Identifier | None = PydanticField(default=None, description="Date/time field giving the time extent.")
    versioned: bool = PydanticField(default=False, description="Rows carry valid_from/valid_to; history is kept.")
    no_overlap: bool = PydanticField(default=False, description="Features of this layer must not overlap.")
    paging: Paging = Paging()
    live: Live | None = PydanticField(
        default=None, description="Read-only fields computed by a view of schema gis_ioc, joined on the key."
    )

    @model_validator(mode="after")
    def _check(self) -> Layer:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"layer {self.id}: field names repeat")
        if self.live is not None:
            clash = sorted({f.name for f in self.live.fields} & set(names))
            if clash:
                raise ValueError(f"layer {self.id}: live fields {clash} clash with stored fields")
            if self.key is None:
                raise ValueError(f"layer {self.id}: live fields are joined on the key; the layer needs a key")
        if self.key is not None and self.key not in names:
            raise ValueError(f"layer {self.id}: key {self.key!r} is not one of its fields")
        if self.temporal is not None:
            field = self.field(self.temporal)
            if field is None or field.type not in ("date", "datetime"):
                raise ValueError(f"layer {self.id}: temporal {self.temporal!r} must name a date or datetime field")
        if self.no_overlap and "Polygon" not in self.geometry:
            raise ValueError(f"layer {self.id}: no_overlap applies to polygon layers only")
        return self

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def live_names(self) -> frozenset[str]:
        """The names of the layer's live (computed, read-only) fields."""
        return frozenset(f.name for f in self.live.fields) if self.live is not None else frozenset()

    def stored_fields(self) -> tuple[Field, ...]:
        """The fields that are columns of the layer's table (those of :meth:`published` less the live ones)."""
        return tuple(f for f in self.fields if f.name not in self.live_names)

    def published(self) -> Layer:
        """The layer as its OGC collection reads it: its stored fields, then its live ones (what items, a
        single feature, queryables, ``filter``, ``sortby`` and ``properties`` know). Only the collection's
        read doors use it; everything else keeps the stored fields (``fields``)."""
        if self.live is None or any(f.name in self.live_names for f in self.fields):
            return self
        return self.model_copy(update={"fields": (*self.fields, *self.live.fields)})

    @property
    def table(self) -> str:
        return self.id


class Symbol(_Strict):
    fill: HexColor | None = None
    stroke: HexColor = "#333333"
    stroke_width: float = PydanticField(default=1.0, ge=0)
    fill_opacity: float = PydanticField(default=0.5, ge=0, le=1)
    radius: float = PydanticField(default=5, ge=0, description="Marker radius in pixels (points).")


class StyleClass(Symbol):
    value: str | int
    label: Text | None = None


class Style(_Strict):
    id: Identifier
    title: Text
    kind: Literal["single", "categorized"]
    symbol: Symbol = Symbol()
    field: Identifier | None = None
    classes: tuple[StyleClass, ...] = ()
    min_zoom: int = PydanticField(default=0, ge=0, le=24)

    @model_validator(mode="after")
    def _check(self) -> Style:
        if self.kind == "categorized" and (self.field is None or not self.classes):
            raise ValueError(f"style {self.id}: a categorized style needs a field and classes")
        if self.kind == "single" and (self.field is not None or self.classes):
            raise ValueError(f"style {self.id}: a single style has no field or classes")
        return self
