"""Users area wiring (staff users and API clients; pages live in web/auth.py)."""

from opsline.areas import Area
from opsline.users import models  # noqa: F401  (tables)

AREA = Area(name="users", order=5)
