"""THE read path: the SQL that selects the published rows of a layer that a viewer may read.

Every door that reads a layer's rows (OGC items, single features, tiles, identify, exports, zones given
as ``layer:fid``, maps) builds its WHERE clause here, so that no door can forget a rule:

- the layer must be readable by the viewer (:func:`readable_layer`: otherwise 404, as if it did not exist);
- only approved rows (drafts stay with their loaders), and for versioned layers the current version
  unless the caller picks another instant;
- a commune officer's rows only (also enforced by PostgreSQL's row-level security, see :mod:`.scope`);
- personal fields only for viewers granted personal data (:meth:`Viewer.sees` drops them from the layer
  the SQL is built from, so a filter, sort or property naming one is refused as unknown);
- a user's CQL2 filter is parsed (never pasted) and compiled with bound values into its own parentheses,
  ANDed with the rules above: it cannot escape them.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.crs import PUBLISHED, PublishedCrs
from gis_ioc.errors import NotFound
from gis_ioc.publish.cql import FilterCompiler, Params
from gis_ioc.query.viewer import Viewer


def readable_layer(viewer: Viewer, catalog: Catalog, layer_id: str, *, published: set[str] | None = None) -> Layer:
    """The layer as the viewer may see it (personal fields dropped unless granted); 404 when it does not
    exist, is not published, or the viewer may not read it (the same answer for all three)."""
    layer = catalog.layers.get(layer_id)
    if layer is None or (published is not None and layer_id not in published) or not viewer.can_read(layer):
        raise NotFound(f"no collection {layer_id!r}")
    return viewer.sees(layer)


def visible(viewer: Viewer, layer: Layer, params: Params, *, alias: str = "t", current: bool = True) -> sql.Composed:
    """The rows of ``layer`` the viewer may read: approved, the current version (unless ``current`` is
    False: the caller selects versions itself), a commune officer's communes."""
    parts: list[sql.Composable] = [sql.SQL("{} = 'approved'").format(sql.Identifier(alias, "approval"))]
    own = viewer.row_communes(layer)
    if own is not None:
        parts.append(sql.SQL("{} = ANY({})").format(sql.Identifier(alias, "commune_code"), params.add(sorted(own))))
    if layer.versioned and current:
        parts.append(sql.SQL("{} IS NULL").format(sql.Identifier(alias, "valid_to")))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def user_filter(
    viewer: Viewer, layer: Layer, node: Any, params: Params, *, filter_crs: PublishedCrs = PUBLISHED[0]
) -> sql.Composed:
    """A parsed CQL2 (JSON) expression as a bound SQL sub-expression in its own parentheses, compiled
    against the layer as the viewer sees it (a personal field is unknown to those not granted it)."""
    return sql.SQL("({})").format(FilterCompiler(viewer.sees(layer), filter_crs, params).compile(node))


def where(
    viewer: Viewer,
    layer: Layer,
    params: Params,
    *,
    alias: str = "t",
    filter: Any = None,
    filter_crs: PublishedCrs = PUBLISHED[0],
    extra: list[sql.Composable] | tuple[sql.Composable, ...] = (),
    current: bool = True,
) -> sql.Composed:
    """:func:`visible` AND each of ``extra`` AND the user's filter, each in its own parentheses."""
    parts: list[sql.Composable] = [visible(viewer, layer, params, alias=alias, current=current)]
    parts.extend(sql.SQL("({})").format(e) for e in extra)
    if filter is not None:
        parts.append(user_filter(viewer, layer, filter, params, filter_crs=filter_crs))
    return sql.SQL(" AND ").join(parts)
