"""The invoicing area's public service surface (other areas call these; see the modules for details)."""

from opsline.billing.invoicing.claims import (  # noqa: F401
    disputed_amount, disputed_by_account, disputed_by_invoice, get_claim, list_claims, raise_claim, transition_claim,
)
from opsline.billing.invoicing.credits import (  # noqa: F401
    CreditItem, credit_invoice, credit_line, creditable_by_line, issue_credit_note, list_credit_notes, rerate_period,
)
from opsline.billing.invoicing.documents import (  # noqa: F401
    email_invoice, export_invoice_lines, export_invoices, invoice_pdf, render_invoice_pdf, statement_pdf, store_invoice_pdf,
)
from opsline.billing.invoicing.invoices import get_invoice, list_invoices, list_lines, transition, transition_to  # noqa: F401
from opsline.billing.invoicing.statements import statement  # noqa: F401
from opsline.billing.invoicing.usage import ImportResult, import_usage, list_rejected, rate_usage  # noqa: F401
