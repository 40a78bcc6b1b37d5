"""The one way to turn rendered HTML into PDF bytes (invoices, letters, reviews), with a clear error when the machine
lacks the system libraries WeasyPrint needs (Pango) instead of a traceback."""

from __future__ import annotations

from opsline.core.errors import OpslineError


class PdfUnavailable(OpslineError):
    status = 503
    title = "PDF rendering unavailable"
    type_slug = "pdf-unavailable"


def render_pdf(html: str, *, base_url: str | None = None) -> bytes:
    """PDF bytes of `html`. Raises PdfUnavailable when WeasyPrint or its system libraries (Pango) are missing."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: libpango/libgobject not found when WeasyPrint loads them
        raise PdfUnavailable(f"PDFs cannot be rendered on this machine: {exc}. Install Pango "
                             "(Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0) and try again.") from None
    return bytes(HTML(string=html, base_url=base_url).write_pdf())
