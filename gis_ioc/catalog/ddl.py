"""Tables made from layer files: the CREATE statement, and the additive changes when a file grows."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from gis_ioc.catalog.models import FieldType, Layer

SCHEMA = "layers"

PG_TYPES: dict[FieldType, str] = {
    "text": "text",
    "integer": "integer",
    "number": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp with time zone",
}


def table_ident(layer: Layer) -> sql.Identifier:
    return sql.Identifier(SCHEMA, layer.table)


def column_types(layer: Layer) -> dict[str, str]:
    """Every column of the layer's table and its PostgreSQL type (as ``format_type`` prints it)."""
    columns = {"fid": "bigint"}
    columns.update({f.name: PG_TYPES[f.type] for f in layer.fields})
    if layer.versioned:
        columns.update({"valid_from": "date", "valid_to": "date"})
    columns.update(
        {
            "geom": f"geometry({layer.geometry},4326)",
            "is_demo": "boolean",
            "load_id": "bigint",
            "approval": "text",
            "updated_at": "timestamp with time zone",
            "sys_from": "timestamp with time zone",
            "sys_to": "timestamp with time zone",
        }
    )
    return columns


def create_table(layer: Layer) -> list[sql.Composed]:
    """CREATE TABLE and its indexes."""
    table = table_ident(layer)
    cols: list[sql.Composable] = [sql.SQL("fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")]
    for f in layer.fields:
        null = sql.SQL(" NOT NULL") if f.required else sql.SQL("")
        cols.append(sql.SQL("{} {}{}").format(sql.Identifier(f.name), sql.SQL(PG_TYPES[f.type]), null))
    if layer.versioned:
        cols.append(sql.SQL("valid_from date NOT NULL"))
        cols.append(sql.SQL("valid_to date CHECK (valid_to IS NULL OR valid_to > valid_from)"))
    cols.extend(
        [
            sql.SQL("geom geometry({}, 4326) NOT NULL").format(sql.SQL(layer.geometry)),
            sql.SQL("is_demo boolean NOT NULL DEFAULT false"),
            sql.SQL("load_id bigint REFERENCES gis_ioc.loads (id)"),
            sql.SQL("approval text NOT NULL DEFAULT 'approved' CHECK (approval IN ('draft', 'approved', 'rejected'))"),
            sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()"),
            # system time (see gis_ioc.loaders.history): published from sys_from until sys_to
            sql.SQL("sys_from timestamptz DEFAULT now()"),
            sql.SQL("sys_to timestamptz"),
        ]
    )
    stmts: list[sql.Composed] = [
        sql.SQL("CREATE TABLE {} (\n    {}\n)").format(table, sql.SQL(",\n    ").join(cols)),
        sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(sql.Identifier(f"{layer.id}_geom_idx"), table),
        sql.SQL("CREATE INDEX {} ON {} (load_id)").format(sql.Identifier(f"{layer.id}_load_idx"), table),
        sql.SQL("CREATE INDEX {} ON {} (sys_from, sys_to)").format(sql.Identifier(f"{layer.id}_sys_idx"), table),
    ]
    if layer.key is not None:
        key_cols = [sql.Identifier(layer.key)]
        if layer.versioned:
            key_cols.append(sql.Identifier("valid_from"))
        stmts.append(
            sql.SQL("CREATE UNIQUE INDEX {} ON {} ({}) WHERE approval = 'approved'").format(
                sql.Identifier(f"{layer.id}_key_idx"), table, sql.SQL(", ").join(key_cols)
            )
        )
    for name in ("commune_code", layer.temporal):
        if name is not None and layer.field(name) is not None and name != layer.key:
            stmts.append(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    sql.Identifier(f"{layer.id}_{name}_idx"), table, sql.Identifier(name)
                )
            )
    comment = f"{layer.title.vi} / {layer.title.en} (from layers/{layer.id}.yaml)"
    stmts.append(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(comment)))
    return stmts


@dataclass(frozen=True)
class TableDiff:
    """What separates an existing table from its layer file."""

    add: list[str]
    changed: list[str]
    extra: list[str]


def diff_table(layer: Layer, existing: dict[str, str]) -> TableDiff:
    wanted = column_types(layer)
    add = [name for name in wanted if name not in existing]
    changed = [
        f"{name}: {existing[name]} in the database, {wanted[name]} in the catalog"
        for name in wanted
        if name in existing and existing[name].replace(" ", "").lower() != wanted[name].replace(" ", "").lower()
    ]
    extra = [name for name in existing if name not in wanted]
    return TableDiff(add=add, changed=changed, extra=extra)


def add_columns(layer: Layer, names: list[str]) -> list[sql.Composed]:
    """ALTER TABLE … ADD COLUMN for new fields (nullable: existing rows have no value yet)."""
    types = column_types(layer)
    return [
        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(table_ident(layer), sql.Identifier(n), sql.SQL(types[n]))
        for n in names
    ]
