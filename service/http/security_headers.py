"""Security headers on every response of the service (pages, JSON, errors).

The pages load nothing from elsewhere, run no script and keep their style in ``/static/web.css``,
so the policy allows only that: no inline style or script, no framing (clickjacking), forms only
to this origin, and a referrer only to this origin (a signed link's token never reaches another
site; "no-referrer" would make browsers send "Origin: null" on form POSTs, which the CSRF check
needs).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STYLESHEET = "/static/web.css"


def _add(response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404, 405, redirects raised by aiohttp itself
        _add(exc)
        raise
    _add(response)
    return response


def add_stylesheet_route(app: web.Application, templates_dir: Path) -> None:
    """Serve the pages' stylesheet (read once)."""
    css = (templates_dir / "web" / "web.css").read_text(encoding="utf-8")

    async def stylesheet(_: web.Request) -> web.Response:
        return web.Response(
            text=css, content_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
        )

    app.router.add_get(STYLESHEET, stylesheet)
