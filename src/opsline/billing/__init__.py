"""Billing: charges, bill runs, invoices, ledger; invoicing/ adds TMF678, PDFs, credit notes and usage rating."""
