"""Settings of PostgreSQL: the service's and the owner's URLs, the pool."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, field_validator


class DatabaseSettings(BaseModel):
    """PostgreSQL."""

    database_url: str = Field(
        default="postgresql://notifier@127.0.0.1:15432/notifier",
        validation_alias=AliasChoices("NOTIFIER_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL as the service's role (it needs no DDL rights when NOTIFIER_MIGRATION_DATABASE_URL is set).",
    )
    migration_database_url: str | None = Field(
        default=None,
        description="The owner role's URL, used by `notifier db migrate` (and `staff add/revoke`), which "
        "then grants the NOTIFIER_DATABASE_URL role its privileges. None: that one role does both "
        "(local development only: it could then alter the audit log).",
    )
    database_pool_size: int = Field(default=4, ge=1, le=100, description="Connections in the service's pool.")

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v
