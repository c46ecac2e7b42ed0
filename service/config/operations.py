"""Settings of operations: the HTTP listeners and the logs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class OperationsSettings(BaseModel):
    """Operations: the public listener, the metrics and health listener, the logs."""

    http_host: str = Field(
        default="127.0.0.1",
        description="Address of the public listener (callbacks, customer pages, support page).",
    )
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the public listener (0: any free port)."
    )
    http_reuse_port: bool = Field(
        default=False,
        description="Share the public port with other processes on this host (SO_REUSEPORT); the "
        "workers' supervisor sets it for its workers. Off: a port taken stops start-up.",
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
    workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Service processes `notifier run` starts on this host, members of one consumer "
        "group (for more than one core). From 2, worker i (0, 1, ...) serves metrics on "
        "NOTIFIER_METRICS_PORT + i, each a scrape target, and all share the public port.",
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

    @model_validator(mode="after")
    def _worker_ports(self) -> OperationsSettings:
        if self.workers == 1:
            return self
        if self.http_port == 0 or self.metrics_port == 0:
            raise ValueError(
                "NOTIFIER_WORKERS above 1 needs fixed ports: set NOTIFIER_HTTP_PORT and NOTIFIER_METRICS_PORT "
                "(not 0), the workers share the first and take the second upwards"
            )
        last = self.metrics_port + self.workers - 1
        if last > 65535:
            raise ValueError(f"NOTIFIER_METRICS_PORT + NOTIFIER_WORKERS - 1 is {last}: above 65535")
        if self.metrics_port <= self.http_port <= last:
            raise ValueError(
                f"NOTIFIER_HTTP_PORT {self.http_port} is one of the workers' metrics ports "
                f"{self.metrics_port}-{last}: move one of them"
            )
        return self
