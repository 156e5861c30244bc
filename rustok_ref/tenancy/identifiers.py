"""Tenant identifiers: validate and normalise a slug, a UUID or a host before any lookup.

A port of RusToK's `tenant_validation.rs` (reference §1): trim with the Unicode White_Space
set (Rust's `trim`, which unlike `str.strip()` keeps U+001C..U+001F), byte-length caps
checked before any regex, `re.fullmatch` (a `$` anchor would let "acme\\n" through), the 41
reserved slugs. Where the real rules have a defect this port fixes it, and a named test in
tests/unit/test_identifiers.py says so:

* non-ASCII is refused before lowercasing, so U+212A KELVIN SIGN is not folded into "k"
  (the real code accepts "\\u212aacme" as "kacme": a homoglyph of another tenant);
* a slug is exactly one DNS label (1..63 bytes, no leading or trailing hyphen), so
  "{slug}.example.com" is always a valid host; a 64-character slug is `TOO_LONG` with the
  true cap in its message (the real code says 64, rejects 64 as invalid characters);
* `validate_any` recognises a UUID in any case (the real code takes an uppercase UUID for a
  36-character slug).

Everything else is the real behaviour: IPv4 literals and single labels are hosts, a trailing
dot is not, a host has no reserved words. IPv6 literals are not hosts: a tenant's domain is
a name, and the resolver already unbrackets "[::1]:8080" correctly before asking.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Final

from rustok_ref.errors import ValidationError
from rustok_ref.tenancy.model import IdentifierKind, TenantIdentifier

MAX_SLUG_BYTES: Final = 63
MAX_HOST_BYTES: Final = 253

# Unicode White_Space (PropList.txt), the set Rust's `char::is_whitespace` and `str::trim` use.
WHITE_SPACE: Final = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

RESERVED_SLUGS: Final = frozenset(
    {
        *("api", "admin", "www", "app", "cdn", "assets", "static", "health", "metrics"),
        *("docs", "swagger"),
        *("mail", "smtp", "pop", "imap", "ftp", "sftp", "ssh", "vpn"),
        *("auth", "login", "logout", "register", "signup", "signin"),
        *("dev", "test", "staging", "prod", "production", "localhost"),
        *("db", "database", "cache", "redis", "postgres"),
        *("root", "system", "internal", "private", "public"),
    }
)

# One DNS label (RFC 1035 letters-digits-hyphen): a whole slug, or one label of a host.
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE
)


class Reason(StrEnum):
    """Why an identifier was refused: the real `TenantValidationError` variants, plus
    `MISSING` for a request that names no tenant at all."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    INVALID_CHARACTERS = "invalid_characters"
    RESERVED = "reserved"
    INVALID_UUID = "invalid_uuid"
    HOSTNAME_TOO_LONG = "hostname_too_long"
    INVALID_HOSTNAME = "invalid_hostname"
    MISSING = "missing"


_MESSAGES: Final = {
    Reason.EMPTY: "Identifier cannot be empty",
    Reason.TOO_LONG: f"Identifier is too long (max {MAX_SLUG_BYTES} characters)",
    Reason.INVALID_CHARACTERS: (
        "Identifier contains invalid characters (only lowercase alphanumeric and hyphens "
        "allowed, starting and ending with an alphanumeric)"
    ),
    Reason.INVALID_UUID: "Invalid UUID format",
    Reason.HOSTNAME_TOO_LONG: f"Hostname is too long (max {MAX_HOST_BYTES} characters)",
    Reason.INVALID_HOSTNAME: "Invalid hostname format",
    Reason.MISSING: "The request names no tenant and no default tenant is configured",
}


class TenantValidationError(ValidationError):
    """A tenant identifier was refused (HTTP 400); `reason` says which rule refused it.

    The message never echoes raw input, only a reserved slug, which is already validated.
    """

    def __init__(self, reason: Reason, reserved: str | None = None) -> None:
        if reason is Reason.RESERVED:
            message = f"Identifier '{reserved}' is reserved and cannot be used"
        else:
            message = _MESSAGES[reason]
        super().__init__(message)
        self.reason = reason


def trim(raw: str) -> str:
    """`raw` without leading and trailing Unicode White_Space (Rust's `str::trim`)."""
    return raw.strip(WHITE_SPACE)


def _utf8_length(value: str) -> int:
    """Bytes in UTF-8; a lone surrogate (a str can hold one, UTF-8 cannot) counts as three."""
    return len(value.encode("utf-8", "surrogatepass"))


def _non_empty(raw: str) -> str:
    value = trim(raw)
    if not value:
        raise TenantValidationError(Reason.EMPTY)
    return value


def validate_slug(raw: str) -> str:
    """The normalised slug: trimmed, lowercase, one DNS label, not reserved."""
    value = _non_empty(raw)
    if _utf8_length(value) > MAX_SLUG_BYTES:
        raise TenantValidationError(Reason.TOO_LONG)
    if not value.isascii():
        raise TenantValidationError(Reason.INVALID_CHARACTERS)
    value = value.lower()
    if not _LABEL.fullmatch(value):
        raise TenantValidationError(Reason.INVALID_CHARACTERS)
    if value in RESERVED_SLUGS:
        raise TenantValidationError(Reason.RESERVED, reserved=value)
    return value


def validate_uuid(raw: str) -> uuid.UUID:
    """The UUID of the canonical hyphenated form, in either case (not braced, URN or bare)."""
    value = trim(raw)
    if not _UUID.fullmatch(value):
        raise TenantValidationError(Reason.INVALID_UUID)
    return uuid.UUID(value)


def validate_host(raw: str) -> str:
    """The normalised host name: trimmed, lowercase, dot-separated DNS labels, no port."""
    value = _non_empty(raw)
    if _utf8_length(value) > MAX_HOST_BYTES:
        raise TenantValidationError(Reason.HOSTNAME_TOO_LONG)
    if not value.isascii():
        raise TenantValidationError(Reason.INVALID_HOSTNAME)
    value = value.lower()
    if not all(_LABEL.fullmatch(label) for label in value.split(".")):
        raise TenantValidationError(Reason.INVALID_HOSTNAME)
    return value


def validate_any(raw: str) -> TenantIdentifier:
    """Classify and validate: a UUID (any case), else a host when it has a dot, else a slug."""
    value = trim(raw)
    if _UUID.fullmatch(value):
        return TenantIdentifier(IdentifierKind.UUID, str(validate_uuid(value)))
    if "." in value:
        return TenantIdentifier(IdentifierKind.HOST, validate_host(value))
    return TenantIdentifier(IdentifierKind.SLUG, validate_slug(value))
