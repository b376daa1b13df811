"""Legacy Vietnamese encodings: tables checked against glibc's converter, detection on real names."""

from __future__ import annotations

import csv
import subprocess
import unicodedata

import pytest

from gis_ioc.loaders import vn_text
from gis_ioc.settings import PROJECT_ROOT

NAMES = [
    r["name"] for r in csv.DictReader((PROJECT_ROOT / "boundaries" / "hung_yen_units_2025.csv").open(encoding="utf-8"))
]
#: TCVN3 (ABC) has no capitals with tone marks: names whose capitals are plain letters survive the round trip.
PLAIN_CAPITALS = [n for n in NAMES if all(c.isascii() or c.islower() for c in n)]
LOWER_LETTERS = [c for c in vn_text.ENCODE_TCVN3 if c.islower() and not c.isascii()]


def test_tcvn3_table_agrees_with_glibc() -> None:
    """glibc's TCVN5712-1 (TCVN 5712:1993) is an implementation independent of ours."""
    for letter in [*LOWER_LETTERS, "Ă", "Â", "Ê", "Ô", "Ơ", "Ư", "Đ"]:
        raw = vn_text.encode(letter, "tcvn3")
        out = subprocess.run(["iconv", "-f", "TCVN5712-1", "-t", "UTF-8"], input=raw, capture_output=True, check=True)
        assert unicodedata.normalize("NFC", out.stdout.decode()) == letter, (letter, raw)
    assert len(LOWER_LETTERS) == 67  # 12 vowels × 6 tones, minus the 6 plain ASCII vowels, plus đ


def test_cp1258_agrees_with_glibc() -> None:
    text = "Phường Phố Hiến, xã Tân Hưng, Đội PCCC"
    raw = vn_text.encode(text, "cp1258")
    out = subprocess.run(["iconv", "-f", "CP1258", "-t", "UTF-8"], input=raw, capture_output=True, check=True)
    assert unicodedata.normalize("NFC", out.stdout.decode()) == text


@pytest.mark.parametrize("encoding", ["tcvn3", "vni", "cp1258", "utf-8"])
def test_round_trip_and_detection_of_every_commune_name(encoding: str) -> None:
    names = PLAIN_CAPITALS if encoding == "tcvn3" else NAMES
    raw = [vn_text.encode(n, encoding) for n in names]
    assert [vn_text.decode(r, encoding) for r in raw] == names
    assert vn_text.detect(raw).encoding == encoding
    # one name is enough to tell
    for r, n in zip(raw[:20], names[:20], strict=True):
        if not n.isascii():
            assert vn_text.detect([r]).encoding == encoding, n


def test_vni_capitals_and_known_bytes() -> None:
    assert vn_text.encode("Đường", "vni") == b"\xd1\xf6\xf4\xf8ng"  # Ñ ö ô ø n g
    assert vn_text.encode("Hưng Yên", "vni") == b"H\xf6ng Ye\xe2n"
    assert vn_text.decode(vn_text.encode("ĐẮK LẮK", "vni"), "vni") == "ĐẮK LẮK"


def test_tcvn3_capitals_with_tones_come_out_lowercase() -> None:
    assert vn_text.decode(vn_text.encode("Ứng Hòa", "tcvn3"), "tcvn3") == "ứng Hòa"


def test_decoded_text_is_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Tiên Lữ").encode("utf-8")
    assert vn_text.decode(decomposed, "utf-8") == unicodedata.normalize("NFC", "Tiên Lữ")
