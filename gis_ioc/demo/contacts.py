"""Demo contacts of each commune's leaders (invented names and numbers, marked as demo)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np

from gis_ioc.demo.geometry import Commune

CONTACT_COLUMNS = ["commune_code", "role", "full_name", "title", "office_phone", "mobile_phone", "email"]

_FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đỗ", "Bùi", "Đặng", "Ngô", "Đào", "Lương"]
_MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Quang", "Thu", "Hồng", "Xuân", "Thanh", "Hữu"]
_GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hùng", "Lan", "Long", "Mai", "Nam", "Phương", "Quân", "Sơn"]
_ROLES = {
    "chairman": ("Chủ tịch UBND", "ubnd"),
    "vice_chairman": ("Phó Chủ tịch UBND", "ubnd"),
    "police_chief": ("Trưởng Công an", "congan"),
    "military_commander": ("Chỉ huy trưởng Ban CHQS", "bchqs"),
}


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in plain if ch.isascii() and ch.isalnum()).lower()


def contact_rows(rng: np.random.Generator, communes: list[Commune]) -> Iterator[tuple[Any, ...]]:
    for commune in communes:
        # Area codes: 0221 for the former Hưng Yên, 0227 for the former Thái Bình (communes coded 12xxx).
        area = "0227" if commune.code.startswith("12") else "0221"
        office = f"{area} {rng.integers(3_500_000, 3_999_999)}"
        for role, (title, unit) in _ROLES.items():
            name = f"{rng.choice(_FAMILY)} {rng.choice(_MIDDLE)} {rng.choice(_GIVEN)}"
            mobile = f"09{rng.integers(10, 99)} {rng.integers(100, 999)} {rng.integers(100, 999)}"
            yield (
                commune.code,
                role,
                name,
                f"{title} {commune.name}",
                office,
                mobile,
                f"{unit}.{_ascii(commune.short_name)}@hungyen.gov.vn",
            )
