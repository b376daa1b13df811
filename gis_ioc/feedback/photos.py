"""Photos of a report: checked by decoding them (Pillow), turned upright, re-encoded as JPEG without any
metadata (EXIF with its GPS position, XMP, ICC comments), so the stored copy — the only one kept and the
one served to the public — says nothing the picture does not show."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gis_ioc.feedback.errors import FeedbackError

MAX_PHOTOS = 3
MAX_BYTES = 5 * 1024 * 1024  # one photo as sent (3 of them fit the 16 MB request limit)
MAX_PIXELS = 50_000_000  # a decompression bomb is refused before it is decoded
LONGEST_SIDE = 2048  # larger photos are scaled down
FORMATS = frozenset({"JPEG", "PNG", "WEBP", "MPO"})
QUALITY = 85


@dataclass(frozen=True)
class Photo:
    jpeg: bytes
    width: int
    height: int


def clean(data: bytes, name: str = "1") -> Photo:
    """The photo re-encoded as a JPEG without metadata, or a 400 naming what is wrong with it (``name``: which
    photo, e.g. ``2 (cau.jpg)``)."""
    if len(data) > MAX_BYTES:
        raise FeedbackError(
            f"ảnh {name} lớn quá {MAX_BYTES // (1024 * 1024)} MB",
            f"photo {name}: a photo may be at most {MAX_BYTES // (1024 * 1024)} MB",
            413,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or "?"
                if kind not in FORMATS:
                    raise FeedbackError(
                        f"ảnh {name}: định dạng {kind} không được nhận (chỉ JPEG, PNG, WebP)",
                        f"photo {name}: format {kind} is not accepted (JPEG, PNG, WebP only)",
                    )
                if image.width * image.height > MAX_PIXELS:
                    raise FeedbackError(
                        f"ảnh {name} có quá nhiều điểm ảnh ({image.width}×{image.height})",
                        f"photo {name}: too many pixels ({image.width}×{image.height})",
                    )
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = upright.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FeedbackError(
            f"ảnh {name}: không đọc được (không phải ảnh JPEG, PNG hay WebP hợp lệ)",
            f"photo {name}: not a readable JPEG, PNG or WebP image ({type(exc).__name__})",
        ) from exc
    except Image.DecompressionBombWarning as exc:
        raise FeedbackError(f"ảnh {name} có quá nhiều điểm ảnh", f"photo {name}: too many pixels") from exc
    rgb.thumbnail((LONGEST_SIDE, LONGEST_SIDE))
    # a new image from the pixels only: nothing of the original's info (EXIF, XMP, comments) comes along
    bare = Image.new("RGB", rgb.size)
    bare.paste(rgb)
    out = io.BytesIO()
    bare.save(out, format="JPEG", quality=QUALITY, optimize=True)
    return Photo(out.getvalue(), bare.width, bare.height)
