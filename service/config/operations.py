"""Settings of operations: the HTTP listeners and the logs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class OperationsSettings(BaseModel):
    """Operations: the public listener, the metrics and health listener, the logs."""

    http_host: str = Field(
        default="127.0.0.1",
        description="Address of the public listener (callbacks, customer pages, support page).",
    )
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the public listener (0: any free port)."
    )
    http_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest request body the public listener reads; larger gets 413.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Listener of /metrics, /healthz and /readyz, kept off the ingress."
    )
    metrics_port: int = Field(
        default=8081,
        ge=0,
        le=65535,
        description="Port of the operations listener (/metrics, /healthz, /readyz).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="json (one object a line, for collectors) or console (for people)."
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The event loop the service's commands run on: uvloop (faster), or Python's own.",
    )
