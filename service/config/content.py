"""Settings of the messages' content: who may be texted, templates, brand, contacts, length."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from service.resources import templates_dir


class ContentSettings(BaseModel):
    """Messages: who may be texted, and what they say."""

    allow_foreign_mobiles: bool = Field(
        default=False, description="Also text mobiles outside Hong Kong (E.164 with their country code)."
    )

    templates_dir: Path = Field(
        default_factory=templates_dir,
        description="Message and page templates; default: the ones shipped in the package.",
    )
    brand_name: str = Field(default="Specialized", description="Brand named in every message and page.")
    contact_phone: str = Field(
        default="+852 3001 2345", description="Customer-service phone named in messages and pages."
    )
    contact_email: str = Field(
        default="hk-support@example.com", description="Customer-service email named in messages and pages."
    )
    default_locale: Literal["zh-HK", "en"] = Field(
        default="zh-HK", description="Language of a customer whose event asks for none we have."
    )
    sms_max_segments: int = Field(
        default=6,
        ge=1,
        le=10,
        description="Hard cap on one SMS in segments: a longer one is shortened (name left out, then "
        "the document list cut), else sent by email (or failed without an address). Every template's "
        "budget (templates/sms/budgets.toml) must be within it.",
    )

    @field_validator("templates_dir")
    @classmethod
    def _templates_exist(cls, v: Path) -> Path:
        if not v.is_dir():
            raise ValueError(f"directory {v} does not exist")
        return v
