"""What people write, matched to the catalog: values to codes through their labels, headers to fields.

Matching is insensitive to case, diacritics (``đ`` is ``d``), spacing and punctuation: ``Hộ gia đình, cá
nhân``, ``ho gia dinh ca nhan`` and ``HO_GIA_DINH_CA_NHAN`` are one key. A value matches a code by the
code itself, its Vietnamese and English labels and the catalog's synonyms (``THCS``); a column matches a
field by its name, its Vietnamese and English titles and the field's synonyms (``Số thửa``, ``SHTHUA``).
A key that would lead to two codes (or two fields) is dropped: nothing is matched by guess.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

from gis_ioc.catalog.models import Field, Layer

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def key(text: object) -> str:
    """The matching key: lower case, no diacritics, letters and digits only."""
    decomposed = unicodedata.normalize("NFD", str(text).replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _NOT_ALNUM.sub("", bare.lower())


def _unambiguous(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    clash: set[str] = set()
    for k, target in pairs:
        if not k:
            continue
        if k in out and out[k] != target:
            clash.add(k)
        out.setdefault(k, target)
    return {k: v for k, v in out.items() if k not in clash}


def value_lookup(fld: Field) -> dict[str, str | int]:
    """key → code for a field with allowed values."""
    pairs: list[tuple[str, str]] = []
    codes: dict[str, str | int] = {}
    for value in fld.values or ():
        codes[str(value.code)] = value.code
        for text in (str(value.code), value.label.vi, value.label.en, *value.synonyms):
            pairs.append((key(text), str(value.code)))
    return {k: codes[c] for k, c in _unambiguous(pairs).items()}


def field_lookup(layer: Layer) -> dict[str, str]:
    """key → field name, from the fields' names, titles and synonyms."""
    pairs = [(key(text), f.name) for f in layer.fields for text in (f.name, f.title.vi, f.title.en, *f.synonyms)]
    return _unambiguous(pairs)


def match_columns(columns: Iterable[str], layer: Layer, taken: dict[str, str]) -> dict[str, str]:
    """field → column for the columns whose header is a field's name, title or synonym (``taken``: already
    mapped field → column, left alone)."""
    lookup = field_lookup(layer)
    used = set(taken.values())
    out: dict[str, str] = {}
    for column in columns:
        if column in used:
            continue
        name = lookup.get(key(column))
        if name is not None and name not in taken and name not in out:
            out[name] = column
    return out


def propose(columns: Iterable[str], layer: Layer, taken: dict[str, str]) -> dict[str, str]:
    """column → field guesses for what stays unmatched (closest key above 0.6 similarity), for a ``--map``
    proposal the officer confirms; never applied by itself."""
    free_fields = [f for f in layer.fields if f.name not in taken]
    keys = {
        key(text): f.name for f in free_fields for text in (f.name, f.title.vi, f.title.en, *f.synonyms) if key(text)
    }
    out: dict[str, str] = {}
    for column in columns:
        if column in taken.values():
            continue
        close = difflib.get_close_matches(key(column), list(keys), n=1, cutoff=0.6)
        if close and keys[close[0]] not in out.values():
            out[column] = keys[close[0]]
    return out


def map_line(pairs: dict[str, str]) -> str:
    """``--map A=b --map "C D"=e`` (quoted for a shell where needed)."""
    parts = []
    for src, dst in pairs.items():
        arg = f"{src}={dst}"
        parts.append(f"--map {arg}" if re.fullmatch(r"[\w.=-]+", arg, flags=re.ASCII) else f'--map "{arg}"')
    return " ".join(parts)
