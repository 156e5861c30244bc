"""Properties of tenant identifier validation, including the review's two (P2.2), corrected.

The review proposes "every `[a-z0-9-]{1,64}` that is not reserved is valid" and "any string
containing a non-alphanumeric, non-'-' character is rejected". Both are false against the
real rules (reference §1.9); the counterexamples stay below as named `@example`s of the
corrected properties.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rustok_ref.config import Settings
from rustok_ref.tenancy.identifiers import (
    MAX_SLUG_BYTES,
    RESERVED_SLUGS,
    WHITE_SPACE,
    TenantValidationError,
    trim,
    validate_any,
    validate_host,
    validate_slug,
    validate_uuid,
)
from rustok_ref.tenancy.model import IdentifierKind
from rustok_ref.tenancy.resolver import identifier_from_request

SLUG_ALPHABET = string.ascii_lowercase + string.digits + "-"
TRUSTING = Settings(
    _env_file=None,
    tenant_header="X-Tenant-ID",
    default_tenant=None,
    trusted_proxies=["127.0.0.0/8"],
)

# Text near the edges of the rules: identifier characters, both cases, dots, White_Space,
# control characters, homoglyphs, a little of everything else.
edgy_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(SLUG_ALPHABET + string.ascii_uppercase + "..."),
        st.sampled_from(WHITE_SPACE + "\x00\x1c\x1f\u200b\u212a\uff41\u0430_:[]@'<>/\\"),
        st.characters(),
    ),
    max_size=80,
)
identifier_like = st.one_of(
    st.text(),
    edgy_text,
    st.uuids().map(str).map(str.upper),
    st.from_regex(r"[A-Za-z0-9-]{1,64}(\.[A-Za-z0-9-]{1,64}){0,4}", fullmatch=True),
)


@given(identifier_like)
@example("550E8400-E29B-41D4-A716-446655440000")
@example("\u212aacme")
@example("a" * 64)
@example(" a")
@example("example.com\n")
@example("\ud800")  # a lone surrogate: UTF-8 cannot encode it, the byte cap must not crash
def test_validate_any_returns_a_fixed_point_or_refuses(raw: str) -> None:
    """Whatever the text, `validate_any` returns an identifier that validates to itself, or
    raises `TenantValidationError`; nothing else escapes."""
    try:
        identifier = validate_any(raw)
    except TenantValidationError:
        return
    assert validate_any(identifier.value) == identifier
    assert identifier.value.isascii()
    assert identifier.value == identifier.value.lower()


@given(identifier_like)
def test_each_validator_is_idempotent(raw: str) -> None:
    for validate in (validate_slug, validate_host):
        try:
            value = validate(raw)
        except TenantValidationError:
            continue
        assert validate(value) == value
    try:
        parsed = validate_uuid(raw)
    except TenantValidationError:
        return
    assert validate_uuid(str(parsed)) == parsed
    assert validate_any(raw).kind is IdentifierKind.UUID


@given(st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True))
@example("-a")  # the review: valid; real and here: a leading hyphen is refused
@example("a" * 64)  # the review: valid; real: "invalid characters"; here: too long (cap 63)
@example("a-")  # the review and the real code: valid; here: not a DNS label
@example("a--b")  # valid everywhere
@example("admin")  # reserved
def test_review_property_1_corrected_which_slugs_of_the_alphabet_are_valid(slug: str) -> None:
    """Corrected: a `[a-z0-9-]{1,64}` string is valid exactly when it has at most 63
    characters, starts and ends with a letter or digit, and is not reserved."""
    expected = (
        len(slug) <= MAX_SLUG_BYTES
        and slug[0] != "-"
        and slug[-1] != "-"
        and slug not in RESERVED_SLUGS
    )
    try:
        assert validate_slug(slug) == slug
    except TenantValidationError:
        assert not expected
    else:
        assert expected


_NOT_SLUG_CHARACTER = re.compile(r"[^A-Za-z0-9-]")


@given(
    st.one_of(
        edgy_text,
        st.tuples(
            st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True),
            st.characters().filter(lambda c: _NOT_SLUG_CHARACTER.fullmatch(c) is not None),
            st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True),
        ).map("".join),
    )
)
@example(" a")  # the review: rejected; real and here: trimmed to "a" and accepted
@example("a ")
@example("a\n")
@example("\u3000a")  # ideographic space is White_Space too
@example("\x1ca")  # not White_Space in Rust: refused (Python's str.strip would take it off)
@example("\u212aacme")  # real: lowercased to "kacme" and accepted; here: refused
@example("\uff41")  # fullwidth 'a'
def test_review_property_2_corrected_other_characters_are_refused_after_trimming(
    raw: str,
) -> None:
    """Corrected: a string is refused when what is left after trimming Unicode White_Space
    contains a character other than an ASCII letter, digit or '-'; whitespace at the ends
    does not count."""
    if _NOT_SLUG_CHARACTER.search(trim(raw)):
        with pytest.raises(TenantValidationError):
            validate_slug(raw)


def test_the_reviews_properties_as_written_are_false() -> None:
    """The counterexamples against the review's own wording, for the report."""
    refused_though_claimed_valid = ["-a", "a" * 64]
    accepted_though_claimed_refused = [" a", "a "]
    for slug in refused_though_claimed_valid:
        with pytest.raises(TenantValidationError):
            validate_slug(slug)
    for raw in accepted_though_claimed_refused:
        assert validate_slug(raw) == "a"


authority_like = st.one_of(
    identifier_like,
    st.builds("{}:{}".format, identifier_like, st.one_of(st.integers(0, 70_000), edgy_text)),
    st.builds("[{}]:{}".format, st.ip_addresses(v=6).map(str), st.integers(0, 70_000)),
)


@given(
    st.dictionaries(
        st.sampled_from(["X-Tenant-ID", "Host", "X-Forwarded-Host", "Forwarded"]),
        st.one_of(authority_like, st.builds("for=x;host={}".format, authority_like)),
    )
)
@example({"Host": "javascript:alert(1)"})
@example({"Forwarded": 'host="[::1]:8080"'})
def test_a_request_names_a_valid_identifier_or_is_refused(headers: dict[str, str]) -> None:
    """Whatever the headers, the resolver's extraction yields an identifier that validates to
    itself, or a `TenantValidationError`; a host never keeps a port or a scheme."""
    try:
        identifier = identifier_from_request(headers, "127.0.0.1", TRUSTING)
    except TenantValidationError:
        return
    if identifier.kind is IdentifierKind.HOST:
        assert validate_host(identifier.value) == identifier.value
    else:
        assert validate_any(identifier.value) == identifier
    assert ":" not in identifier.value
