"""Errors the orders area raises."""

from __future__ import annotations

from opsline.core.errors import Conflict, InvalidInput, NotFound, TransitionNotAllowed


class UnableToPlaceOrder(InvalidInput):
    pass


class OrderNotAllowed(Conflict):
    """The account or product is in a state that does not allow this order."""


class DuplicateOrderReference(Conflict):
    title = "Duplicate order reference"
    type_slug = "duplicate-order-reference"


class OrderNotFound(NotFound):
    pass


class QuoteNotFound(NotFound):
    pass


class OrderCancellationNotAllowed(TransitionNotAllowed):
    pass


class QuoteNotEditable(Conflict):
    title = "Quote not editable"
    type_slug = "quote-not-editable"


class UnableToChangeQuote(InvalidInput):
    title = "Unable to change the quote"
    type_slug = "unable-to-change-quote"


class QuoteExpired(TransitionNotAllowed):
    title = "Quote expired"
    type_slug = "quote-expired"


class WaiverReasonRequired(InvalidInput):
    title = "Reason required"
    type_slug = "reason-required"


# Kept for callers that catch the old names: every refused move is the core TransitionNotAllowed.
OrderTransitionNotAllowed = TransitionNotAllowed
QuoteTransitionNotAllowed = TransitionNotAllowed
