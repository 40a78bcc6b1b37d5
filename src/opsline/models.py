"""Imports every area's tables so `Base.metadata` is complete (Alembic, create_all, admin)."""

from opsline.areas import load_areas
from opsline.core import events, jobs  # noqa: F401
from opsline.api import idempotency  # noqa: F401
from opsline.users import models as users_models  # noqa: F401

AREAS = load_areas()
