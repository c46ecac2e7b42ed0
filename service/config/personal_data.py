"""Settings of personal data at rest: its keys and its retention."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class PersonalDataSettings(BaseModel):
    """Personal data at rest."""

    pii_keys: SecretStr | None = Field(
        default=None,
        description="AES-256 keys 'id:base64,id:base64', the first active (`notifier keys generate`). "
        "Without keys no event is kept, so an undelivered SMS cannot fall back to email.",
    )

    retention_days: int = Field(
        default=90, ge=1, le=3650, description="Keep personal data this long after an order's last milestone."
    )
    purge_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the service runs the retention purge."
    )
    blind_index_key: SecretStr | None = Field(
        default=None,
        description="Base64 key (32+ bytes) of the keyed hashes that find phones/emails (opt-outs) "
        "without storing them; required by `notifier run` (`notifier keys generate --kind blind-index`). "
        "It also keys message references: changing it refuses late reports of messages sent before.",
    )
