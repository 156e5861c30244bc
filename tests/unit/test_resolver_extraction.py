"""Which identifier a request names: header precedence, trusted proxies, `Forwarded`, ports,
IPv6 literals, the default tenant. Pure: no lookup happens here."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from rustok_ref.config import Settings
from rustok_ref.tenancy.identifiers import Reason, TenantValidationError
from rustok_ref.tenancy.model import IdentifierKind, TenantIdentifier
from rustok_ref.tenancy.resolver import forwarded_host, identifier_from_request, strip_port

PROXY = "10.0.0.7"
CLIENT = "203.0.113.9"
UUID_TEXT = "550e8400-e29b-41d4-a716-446655440000"
ACME = TenantIdentifier(IdentifierKind.SLUG, "acme")


def tenancy(**overrides: Any) -> Settings:
    """Settings whose tenancy fields come from here, not from RUSTOK_* variables or .env."""
    fields = {"tenant_header": "X-Tenant-ID", "default_tenant": None, "trusted_proxies": []}
    return Settings(_env_file=None, **{**fields, **overrides})


@pytest.fixture
def settings() -> Settings:
    return tenancy(trusted_proxies=[ip_network("10.0.0.0/8"), ip_network("fd00::/8")])


def host(value: str) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.HOST, value)


def test_tenant_header_wins_over_every_host_header(settings: Settings) -> None:
    headers = {
        "X-Tenant-ID": "Acme",
        "X-Forwarded-Host": "forwarded.example.com",
        "Forwarded": "host=rfc.example.com",
        "Host": "host.example.com",
    }
    assert identifier_from_request(headers, PROXY, settings) == ACME


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (UUID_TEXT.upper(), TenantIdentifier(IdentifierKind.UUID, UUID_TEXT)),
        ("acme", ACME),
        ("Shop.Example.com", TenantIdentifier(IdentifierKind.HOST, "shop.example.com")),
    ],
)
def test_tenant_header_takes_any_identifier_kind(
    settings: Settings, value: str, expected: TenantIdentifier
) -> None:
    """Decide: unlike the real header mode (a dotted host there is a 400), the header takes
    whatever `validate_any` accepts."""
    assert identifier_from_request({"x-tenant-id": value}, CLIENT, settings) == expected


def test_header_names_match_in_any_case() -> None:
    headers = {"x-TENANT-id": "Acme", "HOST": "a.example.com"}
    assert identifier_from_request(headers, None, tenancy()) == ACME
    assert identifier_from_request({"hOsT": "a.example.com"}, None, tenancy()) == host(
        "a.example.com"
    )


def test_the_tenant_header_is_configurable() -> None:
    settings = tenancy(tenant_header="X-Shop")
    assert identifier_from_request({"X-Shop": "acme"}, None, settings) == ACME
    headers = {"X-Tenant-ID": "acme", "Host": "a.example.com"}
    assert identifier_from_request(headers, None, settings) == host("a.example.com")


def test_a_blank_tenant_header_counts_as_absent(settings: Settings) -> None:
    headers = {"X-Tenant-ID": " \t", "Host": "shop.example.com"}
    assert identifier_from_request(headers, CLIENT, settings) == host("shop.example.com")


def test_a_bad_tenant_header_is_refused_not_skipped(settings: Settings) -> None:
    headers = {"X-Tenant-ID": "admin", "Host": "shop.example.com"}
    with pytest.raises(TenantValidationError) as caught:
        identifier_from_request(headers, CLIENT, settings)
    assert caught.value.reason is Reason.RESERVED


def test_forwarding_headers_from_a_trusted_proxy_win_over_host(settings: Settings) -> None:
    headers = {"X-Forwarded-Host": "a.example.com, b.example.com", "Host": "internal"}
    assert identifier_from_request(headers, PROXY, settings) == host("a.example.com")
    headers = {"Forwarded": 'for=203.0.113.9;host="b.example.com"', "Host": "internal"}
    assert identifier_from_request(headers, PROXY, settings) == host("b.example.com")


def test_x_forwarded_host_comes_before_forwarded(settings: Settings) -> None:
    headers = {"Forwarded": "host=b.example.com", "X-Forwarded-Host": "a.example.com"}
    assert identifier_from_request(headers, PROXY, settings) == host("a.example.com")


@pytest.mark.parametrize("peer", [CLIENT, None, "not-an-address", "10.0.0.7:4711", "fe80::1"])
def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    settings: Settings, peer: str | None
) -> None:
    headers = {
        "X-Forwarded-Host": "victim.example.com",
        "Forwarded": "host=victim.example.com",
        "Host": "shop.example.com",
    }
    assert identifier_from_request(headers, peer, settings) == host("shop.example.com")


def test_no_proxy_is_trusted_by_default() -> None:
    headers = {"X-Forwarded-Host": "victim.example.com", "Host": "shop.example.com"}
    assert identifier_from_request(headers, "127.0.0.1", tenancy()) == host("shop.example.com")


@pytest.mark.parametrize("peer", ["fd00::5", "::ffff:10.1.2.3"])
def test_ipv6_and_ipv4_mapped_peers_are_matched_against_the_networks(
    settings: Settings, peer: str
) -> None:
    headers = {"X-Forwarded-Host": "a.example.com", "Host": "internal"}
    assert identifier_from_request(headers, peer, settings) == host("a.example.com")


def test_an_empty_forwarded_host_falls_through_to_the_next_candidate(settings: Settings) -> None:
    headers = {"X-Forwarded-Host": " ", "Forwarded": "for=1.2.3.4", "Host": "shop.example.com"}
    assert identifier_from_request(headers, PROXY, settings) == host("shop.example.com")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("host=example.com", "example.com"),
        ('host="example.com:8443"', "example.com:8443"),
        ('for="[2001:db8::1]:4711";proto=https;host=example.com', "example.com"),
        ("For=192.0.2.60; Host=Example.com", "Example.com"),
        ('host="a\\"b"', 'a"b'),
        ('for=x;host="a,b;c"', "a,b;c"),
        ("for=192.0.2.60, host=second.example.com", None),
        ("for=192.0.2.60;proto=http", None),
        ("", None),
        ("not a pair", None),
        ('host="unterminated', None),
    ],
)
def test_forwarded_host_reads_the_first_element_only(header: str, expected: str | None) -> None:
    assert forwarded_host(header) == expected


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("example.com", "example.com"),
        ("example.com:8080", "example.com"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("example.com:", "example.com"),
        ("2001:db8::1", "2001:db8::1"),
        ("[::1", "[::1"),
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("example.com:80x", "example.com:80x"),
        ("[::1]evil.com", "[::1]evil.com"),
    ],
)
def test_strip_port_handles_ipv6_literals_and_cuts_only_numeric_ports(
    authority: str, expected: str
) -> None:
    """Fix [D]: the real middleware cuts at the first ':', turning "[::1]:8080" into "[" and
    "javascript:alert(1)" into the valid host "javascript"."""
    assert strip_port(authority) == expected


def test_the_port_is_stripped_from_every_host_header(settings: Settings) -> None:
    assert identifier_from_request({"Host": "Shop.Example.com:8080"}, CLIENT, settings) == host(
        "shop.example.com"
    )
    headers = {"Forwarded": 'host="shop.example.com:8443"'}
    assert identifier_from_request(headers, PROXY, settings) == host("shop.example.com")


def test_an_ipv6_literal_host_is_unbracketed_then_refused(settings: Settings) -> None:
    """See test_decision_ipv6_literals_are_not_hosts: no tenant is named by an address."""
    with pytest.raises(TenantValidationError) as caught:
        identifier_from_request({"Host": "[::1]:8080"}, CLIENT, settings)
    assert caught.value.reason is Reason.INVALID_HOSTNAME


def test_a_bad_host_is_refused_not_replaced_by_the_default() -> None:
    settings = tenancy(default_tenant="acme")
    with pytest.raises(TenantValidationError) as caught:
        identifier_from_request({"Host": "bad_host.example.com"}, CLIENT, settings)
    assert caught.value.reason is Reason.INVALID_HOSTNAME


def test_the_default_tenant_serves_a_request_that_names_none() -> None:
    settings = tenancy(default_tenant="00000000-0000-0000-0000-000000000001")
    assert identifier_from_request({}, CLIENT, settings) == TenantIdentifier(
        IdentifierKind.UUID, "00000000-0000-0000-0000-000000000001"
    )
    assert identifier_from_request({"Host": "  "}, CLIENT, tenancy(default_tenant="Acme")) == ACME


def test_missing_everything_is_a_validation_error(settings: Settings) -> None:
    with pytest.raises(TenantValidationError) as caught:
        identifier_from_request({"Accept": "*/*"}, CLIENT, settings)
    assert caught.value.reason is Reason.MISSING
    assert caught.value.status == 400


def test_forwarding_headers_without_a_host_leave_nothing_to_name_a_tenant(
    settings: Settings,
) -> None:
    with pytest.raises(TenantValidationError) as caught:
        identifier_from_request({"Forwarded": "for=1.2.3.4"}, PROXY, settings)
    assert caught.value.reason is Reason.MISSING
