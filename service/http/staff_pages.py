"""The support site's answers: its pages (``templates/web/*.html.j2``, never cached) and JSON errors."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web


class StaffPages:
    def __init__(self, templates_dir: Path, page_globals: dict[str, str]) -> None:
        self.page_globals = page_globals
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir), autoescape=True)

    def page(self, name: str, status: int = 200, **context: object) -> web.Response:
        html = self.env.get_template(f"web/{name}.html.j2").render(**self.page_globals, **context)
        return web.Response(
            text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    def refused(self) -> web.Response:
        """A state-changing POST from another origin (CSRF)."""
        return self.page("error", 403, zh="請求被拒絕", en="Request refused")


def api_error(status: int, error: str, **headers: str) -> web.Response:
    return web.json_response({"error": error}, status=status, headers=headers)
