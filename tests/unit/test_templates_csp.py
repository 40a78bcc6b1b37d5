"""Every template works under the Content-Security-Policy: no inline event handlers or inline scripts (they would be
blocked, and a confirmation such as 'Roll back?' would silently not be asked)."""

import re
from pathlib import Path

import opsline

TEMPLATES = Path(opsline.__file__).parent / "web" / "templates"
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.I)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


def test_no_template_has_inline_event_handlers_or_scripts():
    offenders = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for no, line in enumerate(text.splitlines(), 1):
            if INLINE_HANDLER.search(line) or INLINE_SCRIPT.search(line):
                offenders.append(f"{path.relative_to(TEMPLATES)}:{no}: {line.strip()[:120]}")
    assert offenders == []
