"""The citizens' report page: Vietnamese first, English on a switch, only gis_ioc's own assets."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_the_page_is_vietnamese_and_offline(fb: TestClient) -> None:
    page = fb.get("/phan-anh")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="vi">' in html and "Gửi phản ánh" in html and "Dùng vị trí của tôi" in html
    assert 'name="viewport"' in html  # phone-sized
    assert "geolocation=(self)" in page.headers["permissions-policy"]  # the phone's position may be asked
    assets = re.findall(r'(?:src|href)="([^"#?]+)', html)
    assert assets and all(a.startswith("/static/") or a.startswith("data:") for a in assets), assets
    script = fb.get("/static/feedback.js")
    assert script.status_code == 200
    for text in (html, script.text, fb.get("/static/feedback.css").text):
        assert not re.search(r"https?://", text), "no address outside gis_ioc"
    english = fb.get("/phan-anh?lang=en").text
    assert '<html lang="en">' in english and "Report a problem" in english
