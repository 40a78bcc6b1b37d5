"""Turning an uploaded text file's bytes into text: the encodings operators' systems really write (UTF-8 with or
without a BOM, UTF-16 with a BOM, Windows-1252/Latin-1 from older exports), and a clear refusal of binary data."""

from __future__ import annotations

import codecs
import re

# Control characters other than tab, CR and LF never appear in a genuine text file: they mean binary data.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class UnreadableTextFile(ValueError):
    """The bytes are not a text file; the message names the line (1-based) where that shows."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def decode_text_file(data: bytes) -> tuple[str, str]:
    """Decode an uploaded text file; returns (text, encoding used). A BOM decides (UTF-8, UTF-16 LE/BE); otherwise
    strict UTF-8, else Windows-1252, else Latin-1 (which accepts any byte, so the control-character check below is
    what refuses binary data). Raises UnreadableTextFile naming the line of the first NUL or control character."""
    if data.startswith(codecs.BOM_UTF8):
        text, enc = _decode(data[len(codecs.BOM_UTF8):], "utf-8"), "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text, enc = _decode(data, "utf-16"), "utf-16"
    else:
        for enc in ("utf-8", "cp1252", "latin-1"):
            try:
                text = data.decode(enc)
                break
            except UnicodeDecodeError:
                continue
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        what = "a NUL byte" if bad.group() == "\x00" else f"the control character {bad.group()!r}"
        raise UnreadableTextFile(f"line {line} contains {what}: this is binary data or a text file in an encoding we cannot read", line=line)
    return text, enc


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableTextFile(f"the file starts with a {encoding.upper()} byte-order mark but byte {exc.start} is not {encoding.upper()}") from exc
