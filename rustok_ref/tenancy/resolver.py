"""Which tenant a request is for: the identifier from its headers, then the tenant itself.

The real middleware (reference §1.7) picks one mode by configuration, honours
`X-Forwarded-Host` and `Forwarded` from any peer, cuts the port at the first ':' (so
"[::1]:8080" becomes "[") and serves disabled tenants. Here one order serves every request:
the tenant header (any identifier `validate_any` accepts), else the host (forwarding headers
only from `Settings.trusted_proxies`, then `Host`), else `Settings.default_tenant`. A port is
cut only when it is one (digits, after the name or after an IPv6 literal's closing bracket,
so "javascript:alert(1)" stays whole and is refused), and a disabled tenant is refused.

`Forwarded` (RFC 7239) is parsed here, not by a library: the proxy-header support of
werkzeug (ProxyFix) and uvicorn reads only `X-Forwarded-*`, as middleware rather than a
function over headers, and the PyPI packages that parse `Forwarded` itself are young
single-purpose ones; the one parameter needed takes a regular expression.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Final

from rustok_ref.config import Settings
from rustok_ref.errors import TenantDisabledError, TenantNotFoundError
from rustok_ref.tenancy.identifiers import (
    Reason,
    TenantValidationError,
    trim,
    validate_any,
    validate_host,
)
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier, TenantLookup

# One `name=value` pair of a Forwarded element, the value a token or a quoted string; the
# separator after it (';' next pair, ',' next element, or the end).
_FORWARDED_PAIR: Final = re.compile(
    r'\s*(?P<name>[^=;,\s]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^;,"]*?))'
    r"\s*(?P<separator>;|,|\Z)",
    re.DOTALL,
)
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.DOTALL)
# RFC 3986 authority without userinfo: a bracketed IP literal or a name, then ":" digits.
_AUTHORITY: Final = re.compile(r"(?:\[(?P<bracketed>[^\]]*)\]|(?P<host>[^:\[\]]*))(?::[0-9]*)?")


def strip_port(authority: str) -> str:
    """The host of a `Host`-style authority: "example.com:8080" -> "example.com",
    "[::1]:8080" -> "::1". Anything that is not host-and-numeric-port (a bare IPv6 address,
    "javascript:alert(1)") comes back whole, for `validate_host` to refuse."""
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        return authority
    return match["bracketed"] if match["bracketed"] is not None else match["host"]


def forwarded_host(header: str) -> str | None:
    """The `host=` parameter of the first element of a `Forwarded` header, unquoted."""
    position = 0
    while position < len(header):
        match = _FORWARDED_PAIR.match(header, position)
        if match is None:
            return None
        if match["name"].lower() == "host":
            quoted = match["quoted"]
            return match["token"] if quoted is None else _QUOTED_PAIR.sub(r"\1", quoted)
        if match["separator"] != ";":
            return None
        position = match.end()
    return None


def _trusted(peer: str | None, settings: Settings) -> bool:
    if peer is None or not settings.trusted_proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.trusted_proxies)


def _host_candidates(headers: Mapping[str, str], trusted: bool) -> list[str]:
    candidates: list[str] = []
    if trusted:
        if "x-forwarded-host" in headers:
            candidates.append(headers["x-forwarded-host"].split(",", 1)[0])
        if "forwarded" in headers:
            candidates.append(forwarded_host(headers["forwarded"]) or "")
    candidates.append(headers.get("host", ""))
    return candidates


def identifier_from_request(
    headers: Mapping[str, str], peer: str | None, settings: Settings
) -> TenantIdentifier:
    """The validated identifier a request names; header names are matched in any case.

    `peer` is the address of the client that connected (the proxy, when there is one).
    Blank headers count as absent. Raises `TenantValidationError` for a bad identifier or
    when nothing names a tenant.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    explicit = trim(by_name.get(settings.tenant_header.lower(), ""))
    if explicit:
        return validate_any(explicit)
    for candidate in _host_candidates(by_name, _trusted(peer, settings)):
        authority = trim(candidate)
        if authority:
            return TenantIdentifier(IdentifierKind.HOST, validate_host(strip_port(authority)))
    if settings.default_tenant is not None:
        return validate_any(settings.default_tenant)
    raise TenantValidationError(Reason.MISSING)


class TenantResolver:
    """`tenant = await TenantResolver(cache, settings).resolve(request.headers, peer)`."""

    def __init__(self, lookup: TenantLookup, settings: Settings) -> None:
        self._lookup = lookup
        self._settings = settings

    async def resolve(self, headers: Mapping[str, str], peer: str | None) -> Tenant:
        """The active tenant the request names.

        Raises `TenantValidationError` (400) before any lookup when the identifier is bad,
        `TenantNotFoundError` (404) when no tenant has it, `TenantDisabledError` (403) when
        the tenant is switched off.
        """
        identifier = identifier_from_request(headers, peer, self._settings)
        tenant = await self._lookup.get_or_load(identifier)
        if tenant is None:
            raise TenantNotFoundError(f"No tenant with {identifier.kind} '{identifier.value}'")
        if not tenant.is_active:
            raise TenantDisabledError(f"Tenant '{tenant.slug}' is disabled")
        return tenant
