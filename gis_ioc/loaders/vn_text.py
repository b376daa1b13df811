"""Vietnamese text in legacy encodings: TCVN3 (ABC), VNI-Windows and cp1258, detected and converted to NFC.

Old shapefiles from district offices were typed with the ABC (TCVN3, ``.VnTime`` fonts) or VNI-Windows
(``VNI-Times``) fonts, or in Windows-1258; their DBF carries those bytes with no ``.cpg`` to say so.
Python has cp1258 but neither TCVN3 nor VNI, so their tables are data here.

Sources of the tables:
- Letter order (base vowel × no tone, sắc, huyền, hỏi, ngã, nặng; then Đ) and the VNI byte sequences:
  ``vni.h`` and ``tcvn.h`` of xvnkb by Đào Hải Lâm (VISC, 2002, GPL; https://github.com/lamdao/xvnkb),
  the keyboard driver whose tables unikey-era converters share.
- Every TCVN3 byte below was checked against glibc's ``TCVN5712-1`` converter (``iconv -f TCVN5712-1``),
  which implements TCVN 5712:1993; the ABC (VN3) subset has lowercase letters and the seven capitals
  Ă Â Ê Ô Ơ Ư Đ only: capitals with a tone mark were drawn with a capitals font over the lowercase codes,
  so they decode to lowercase (the report says so).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: The 12 vowel letters with their tone forms, in the tables' order, then Đ.
_BASES = ("a", "â", "ă", "e", "ê", "o", "ô", "ơ", "u", "ư", "i", "y")
_TONES = ("", "\u0301", "\u0300", "\u0309", "\u0303", "\u0323")  # none, sắc, huyền, hỏi, ngã, nặng


def _letters(upper: bool) -> list[str]:
    out = []
    for base in _BASES:
        for tone in _TONES:
            letter = unicodedata.normalize("NFC", base + tone)
            out.append(letter.upper() if upper else letter)
    out.append("Đ" if upper else "đ")
    return out


#: TCVN3 (ABC) bytes of the lowercase letters in the order of :func:`_letters` (plain a e o u i y are ASCII).
_TCVN3_LOWER = bytes.fromhex(
    "61b8b5b6b7b9" "a9cac7c8c9cb" "a8bebbbcbdc6" "65d0cccecfd1" "aad5d2d3d4d6" "6fe3dfe1e2e4"
    "abe8e5e6e7e9" "acedeaebecee" "75f3eff1f2f4" "adf8f5f6f7f9" "69ddd7d8dcde" "79fdfafbfcfe" "ae"
)  # fmt: skip
_TCVN3_CAPITALS = {"Ă": 0xA1, "Â": 0xA2, "Ê": 0xA3, "Ô": 0xA4, "Ơ": 0xA5, "Ư": 0xA6, "Đ": 0xA7}

#: VNI-Windows: base letter + mark bytes (as Latin-1 text), uppercase, in the order of :func:`_letters`.
# fmt: off
_VNI_UPPER = [
    "A", "AÙ", "AØ", "AÛ", "AÕ", "AÏ",
    "AÂ", "AÁ", "AÀ", "AÅ", "AÃ", "AÄ",
    "AÊ", "AÉ", "AÈ", "AÚ", "AÜ", "AË",
    "E", "EÙ", "EØ", "EÛ", "EÕ", "EÏ",
    "EÂ", "EÁ", "EÀ", "EÅ", "EÃ", "EÄ",
    "O", "OÙ", "OØ", "OÛ", "OÕ", "OÏ",
    "OÂ", "OÁ", "OÀ", "OÅ", "OÃ", "OÄ",
    "Ô", "ÔÙ", "ÔØ", "ÔÛ", "ÔÕ", "ÔÏ",
    "U", "UÙ", "UØ", "UÛ", "UÕ", "UÏ",
    "Ö", "ÖÙ", "ÖØ", "ÖÛ", "ÖÕ", "ÖÏ",
    "I", "Í", "Ì", "Æ", "Ó", "Ò",
    "Y", "YÙ", "YØ", "YÛ", "YÕ", "Î",
    "Ñ",
]
# fmt: on
# the lowercase sequences are the same with every letter lowercased (a+ù for á, ô for ơ, ñ for đ …)
_VNI_LOWER = [s.lower() for s in _VNI_UPPER]


def _build() -> tuple[dict[str, bytes], dict[str, bytes]]:
    tcvn3: dict[str, bytes] = {}
    for letter, code in zip(_letters(False), _TCVN3_LOWER, strict=True):
        tcvn3[letter] = bytes([code])
    for letter in _letters(True):
        if letter.isascii():
            tcvn3[letter] = letter.encode()
        elif letter in _TCVN3_CAPITALS:
            tcvn3[letter] = bytes([_TCVN3_CAPITALS[letter]])
        else:  # a toned capital: the lowercase code (drawn with a capitals font)
            tcvn3[letter] = tcvn3[letter.lower()]
    vni: dict[str, bytes] = {}
    for upper, lower, u_seq, l_seq in zip(_letters(True), _letters(False), _VNI_UPPER, _VNI_LOWER, strict=True):
        vni[upper] = u_seq.encode("latin-1")
        vni[lower] = l_seq.encode("latin-1")
    return tcvn3, vni


ENCODE_TCVN3, ENCODE_VNI = _build()
_DECODE_TCVN3 = {v[0]: k for k, v in ENCODE_TCVN3.items() if not k.isascii() and (k.islower() or k in _TCVN3_CAPITALS)}
_DECODE_VNI = {v: k for k, v in ENCODE_VNI.items() if not k.isascii()}

LEGACY = ("tcvn3", "vni")
#: What :func:`detect` tries, most likely first when the scores tie.
CANDIDATES = ("utf-8", "cp1258", "tcvn3", "vni", "cp1252")


def encode(text: str, encoding: str) -> bytes:
    """Text → bytes in ``tcvn3``, ``vni`` or any Python codec (to make test files like the old ones)."""
    text = unicodedata.normalize("NFC", text)
    if encoding == "cp1258":  # Windows-1258 keeps base letters and writes tones as combining marks
        return _encode_cp1258(text)
    if encoding not in LEGACY:
        return text.encode(encoding)
    table = ENCODE_TCVN3 if encoding == "tcvn3" else ENCODE_VNI
    out = bytearray()
    for ch in text:
        if ch in table:
            out += table[ch]
        elif ch.isascii():
            out += ch.encode()
        else:
            raise ValueError(f"{ch!r} has no {encoding} code")
    return bytes(out)


def _encode_cp1258(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:  # the base letter precomposed, the tone as a combining mark
            nfd = unicodedata.normalize("NFD", ch)
            base = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONE_MARKS))
            out += (base + "".join(c for c in nfd if c in _TONE_MARKS)).encode("cp1258")
    return bytes(out)


def decode(raw: bytes, encoding: str) -> str:
    """Bytes → NFC text; ``tcvn3`` and ``vni`` by the tables above, the rest by Python's codecs."""
    if encoding == "tcvn3":
        text = "".join(_DECODE_TCVN3.get(b, chr(b)) for b in raw)
    elif encoding == "vni":
        text = _decode_vni(raw)
    else:
        text = raw.decode(encoding)
    return unicodedata.normalize("NFC", text)


def _decode_vni(raw: bytes) -> str:
    out = []
    i = 0
    while i < len(raw):
        pair = raw[i : i + 2]
        if len(pair) == 2 and pair in _DECODE_VNI:
            out.append(_DECODE_VNI[pair])
            i += 2
            continue
        single = raw[i : i + 1]
        out.append(_DECODE_VNI.get(single, single.decode("latin-1")))
        i += 1
    return "".join(out)


# -- detection: which decoding gives Vietnamese syllables --------------------------------------------

_VOWELS = "aăâeêioôơuưy"
_SYLLABLE = re.compile(
    rf"^(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnpqrstvx])?([{_VOWELS}]{{1,3}})(ch|ng|nh|[cmnpt])?$"
)
#: The vowel groups (without tone) a Vietnamese syllable can have.
_NUCLEI_TEXT = (
    "a ă â e ê i o ô ơ u ư y ai ao au ay âu ây eo êu ia iê iu oa oă oe oi ôi ơi oo ua uâ uê ui uô uơ uy ưa ưi ưu "
    "ươ yê iêu yêu oai oay oao oeo uây uôi ươi ươu uya uyê uyu uêu"
)
_NUCLEI = frozenset(_NUCLEI_TEXT.split(" "))
_TONE_MARKS = {"\u0301", "\u0300", "\u0309", "\u0303", "\u0323"}
_WORD = re.compile(r"[^\W\d_]+")


def _syllable_ok(word: str) -> bool:
    nfd = unicodedata.normalize("NFD", word.lower())
    tones = sum(1 for c in nfd if c in _TONE_MARKS)
    bare = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONE_MARKS))
    match = _SYLLABLE.match(bare)
    return tones <= 1 and match is not None and match[2] in _NUCLEI


def score(text: str) -> float:
    """How Vietnamese a text reads: valid syllables with a Vietnamese letter count, anything odd costs."""
    total = 0.0
    for word in _WORD.findall(text):
        vietnamese = any(not c.isascii() for c in word)
        if _syllable_ok(word):
            total += 1.0 if vietnamese else 0.1
        elif vietnamese:
            total -= 1.0
    odd = sum(1 for c in text if not c.isascii() and not c.isalpha())
    return total - 2.0 * odd


@dataclass(frozen=True)
class Detection:
    encoding: str
    score: float
    scores: dict[str, float]
    examples: tuple[tuple[str, str], ...]  # (as read byte-for-byte, converted), a few


def detect(samples: Iterable[bytes]) -> Detection:
    """The encoding whose decoding of these byte strings reads most like Vietnamese."""
    values = [s for s in samples if s and not s.isascii()][:2000]
    scores: dict[str, float] = {}
    for enc in CANDIDATES:
        try:
            scores[enc] = sum(score(decode(v, enc)) for v in values)
        except (UnicodeDecodeError, ValueError):
            continue
    if not values:
        return Detection("utf-8", 0.0, scores, ())
    best = max(scores, key=lambda e: (scores[e], -CANDIDATES.index(e)))
    examples = tuple((v.decode("latin-1"), decode(v, best)) for v in values[:3])
    return Detection(best, scores[best], scores, examples)
