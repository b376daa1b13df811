"""Photos: checked by decoding, re-encoded as JPEG, the GPS position gone from the public copy."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from tests.feedback.conftest import Place

GPS_IFD = 0x8825


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (1200, 900), (180, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", (20.0, 39.0, 12.5), "E", (106.0, 3.0, 7.25)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the original does carry a position
    return data


def test_photos_are_reencoded_without_exif(fb: TestClient, places: list[Place]) -> None:
    p = places[0]
    png = io.BytesIO()
    Image.new("RGB", (300, 200), (0, 120, 0)).save(png, format="PNG")
    answer = fb.post(
        "/open311/v2/requests.json",
        data={"service_code": "cay_xanh", "lat": p.lat, "long": p.lon, "description": "Cây gãy cành"},
        files=[("media", ("a.jpg", jpeg_with_gps(), "image/jpeg")), ("media", ("b.png", png.getvalue(), "image/png"))],
    )
    assert answer.status_code == 201, answer.text
    rid = answer.json()[0]["service_request_id"]
    public = fb.get(f"/open311/v2/requests/{rid}.json").json()[0]
    assert len(public["media_urls"]) == 2 and public["media_url"] == public["media_urls"][0]
    for url in public["media_urls"]:
        photo = fb.get(url.replace("http://testserver", ""))
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(photo.content))
        assert image.format == "JPEG"
        assert not image.getexif() and "exif" not in image.info
        assert b"Exif" not in photo.content and b"PhoneMaker" not in photo.content
    first = Image.open(io.BytesIO(fb.get(public["media_urls"][0].replace("http://testserver", "")).content))
    assert first.size == (1200, 900)


def test_what_is_not_a_photo_is_refused(fb: TestClient, places: list[Place]) -> None:
    p = places[0]
    fields = {"service_code": "cay_xanh", "lat": p.lat, "long": p.lon, "description": "x"}
    fake = fb.post(
        "/open311/v2/requests.json", data=fields, files=[("media", ("a.jpg", b"<html>hi</html>", "image/jpeg"))]
    )
    assert fake.status_code == 400 and "không đọc được" in fake.json()[0]["description"]
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    refused = fb.post(
        "/open311/v2/requests.json", data=fields, files=[("media", ("a.gif", gif.getvalue(), "image/gif"))]
    )
    assert refused.status_code == 400 and "GIF" in refused.json()[0]["description"]
    four = [("media", (f"{i}.png", _png(), "image/png")) for i in range(4)]
    too_many = fb.post("/open311/v2/requests.json", data=fields, files=four)
    assert too_many.status_code == 400 and "tối đa 3 ảnh" in too_many.json()[0]["description"]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PNG")
    return out.getvalue()
