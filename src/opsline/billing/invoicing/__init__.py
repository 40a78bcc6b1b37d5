"""Invoicing: TMF678 bills, invoice PDFs and delivery, exports, credit notes, re-rating, billing claims, usage import and rating, statements."""
