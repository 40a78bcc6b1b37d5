"""Database access: engine and sessions, declarative base with a constraint naming convention, column types."""

from opsline.db.base import Base, UTCDateTime, IdPk, metadata  # noqa: F401
from opsline.db.session import make_engine, make_sessionmaker, transaction  # noqa: F401
