"""What every part of the PostgreSQL store shares: the pool, and the translation of asyncpg's
errors (callers see ``StoreUnavailable`` and nothing from asyncpg).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from service.domain.errors import StoreUnavailable

#: What a lost or failing database looks like to asyncpg. InternalClientError comes from a
#: connection whose server went away mid-transaction (MagicStack/asyncpg#784).
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise StoreUnavailable(f"database: {type(exc).__name__}") from exc


class PostgresBase:
    """The pool every part of ``PostgresStore`` runs its statements on."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
