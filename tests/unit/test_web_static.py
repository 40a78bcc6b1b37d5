"""Vendored front-end assets: the files we serve are the ones recorded (version, hash, licence header), and no page
template pulls a script or stylesheet from a CDN."""

import hashlib
import re
from pathlib import Path

import opsline.web

WEB = Path(opsline.web.__file__).parent
VENDOR = WEB / "static" / "vendor"


def _recorded() -> dict[str, str]:
    text = (VENDOR / "VERSIONS.txt").read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"-> (\S+) .*?sha256 ([0-9a-f]{64})", text)}


def test_vendored_files_match_the_recorded_npm_releases():
    recorded = _recorded()
    assert set(recorded) == {"htmx.min.js", "chart.umd.min.js", "swagger-ui-bundle.js", "swagger-ui.css"}
    assert set(recorded) == {p.name for p in VENDOR.iterdir() if p.name != "VERSIONS.txt"}, "a vendored file is not recorded"
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_chart_js_keeps_its_licence_header():
    head = (VENDOR / "chart.umd.min.js").read_text()[:200]
    assert head.startswith("/*!\n * Chart.js v4.6.1") and "Released under the MIT License" in head


def test_no_template_loads_assets_from_another_origin():
    offenders = []
    for tpl in (WEB / "templates").rglob("*.html"):
        for m in re.finditer(r"<(?:script|link)\b[^>]*(?:src|href)=\"(https?:)?//", tpl.read_text()):
            offenders.append(f"{tpl.relative_to(WEB)}: {m.group(0)}")
    assert offenders == []
