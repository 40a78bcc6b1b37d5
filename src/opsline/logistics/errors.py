"""Errors the logistics service raises (each names the field a user got wrong; the web and API map them to 4xx)."""

from __future__ import annotations

from opsline.core.errors import Conflict, InvalidInput, NotFound


class UnableToBookCollection(InvalidInput):
    title = "Cannot book the collection"
    type_slug = "unable-to-book-collection"


class SlotFull(Conflict):
    title = "Courier slot full"
    type_slug = "courier-slot-full"


class UnableToRecordAttempt(InvalidInput):
    title = "Cannot record the attempt"
    type_slug = "unable-to-record-attempt"


class UnableToReceiveEquipment(InvalidInput):
    title = "Cannot receive the equipment"
    type_slug = "unable-to-receive-equipment"


class UnableToSwapEquipment(InvalidInput):
    title = "Cannot swap the equipment"
    type_slug = "unable-to-swap-equipment"


class CollectionNotFound(NotFound):
    pass
