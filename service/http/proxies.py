"""Who is calling, and over what: proxy headers are believed only from configured proxies.

With ``NOTIFIER_TRUSTED_PROXIES`` empty (the default) the peer's address is the client and the
connection's own scheme is the scheme; ``X-Forwarded-For`` / ``-Proto`` are ignored, since anyone
can send them. When the peer is a trusted proxy, the client is the right-most address of
``X-Forwarded-For`` that is not itself a trusted proxy, and ``X-Forwarded-Proto: https`` marks
the request secure (so the staff cookie gets ``Secure`` behind a TLS-terminating proxy).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Proxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> Proxies:
        return cls(tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries))

    def trusted(self, address: str | None) -> bool:
        ip = _address(address) if address else None
        return ip is not None and any(ip in net for net in self.networks)

    def client(self, request: web.Request) -> str:
        """The client's address (for the audit log and throttling)."""
        peer = request.remote or "unknown"
        if not self.trusted(peer):
            return peer
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
        for hop in reversed([h for h in hops if h]):
            if _address(hop) is None:
                return peer  # a malformed chain: keep what we know for sure
            if not self.trusted(hop):
                return hop
        return peer

    def secure(self, request: web.Request) -> bool:
        """HTTPS end to end as far as we can tell: our TLS, or a trusted proxy's."""
        if request.secure:
            return True
        if not self.trusted(request.remote):
            return False
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https"
