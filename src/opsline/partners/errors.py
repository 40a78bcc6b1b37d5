"""Errors the partners area raises (shared by its service and queries)."""

from __future__ import annotations

from opsline.core.errors import InvalidInput, NotAuthenticated, NotFound, TransitionNotAllowed


class PartnerNotFound(NotFound):
    pass


class ServiceOrderNotFound(NotFound):
    pass


class UnableToSubmitServiceOrder(InvalidInput):
    pass


class ServiceOrderTransitionNotAllowed(TransitionNotAllowed):
    pass


class RetryNotAllowed(TransitionNotAllowed):
    pass


class InvalidCallbackSignature(NotAuthenticated):
    title = "Invalid signature"
    type_slug = "invalid-signature"


class UnableToReadCallback(InvalidInput):
    pass
