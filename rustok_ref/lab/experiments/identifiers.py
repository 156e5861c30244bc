"""Tenant identifier validation (Sprint 1's sanitization, and the review's P2.2 properties).

- `hostile_identifiers`: the Rust tests' attacks (reference §1.8: SQL injection, XSS, path
  traversal) plus seeded ones: a valid slug with one hostile character (quote, angle
  bracket, slash, backslash, NUL or another control character, percent, space) put inside
  it, where trimming cannot remove it. `rejected_share` says how many the resolver's
  validator (`validate_any`) refuses.
- `review_property_counterexamples`: the two properties the review proposes, run under
  hypothesis as the review writes them; each falsified property gives its shrunk
  counterexample (reference §1.9 expects both to be false, against Rust and this port).
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

from rustok_ref.errors import ValidationError
from rustok_ref.tenancy.identifiers import RESERVED_SLUGS, validate_any, validate_slug

RUST_TEST_ATTACKS: tuple[str, ...] = (
    "'; DROP TABLE--",
    "1' OR '1'='1",
    "admin'--",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "<img src=x>",
    "../../../etc/passwd",
    "..\\windows\\system32",
)
HOSTILE_CHARACTERS = "'\"<>/\\;%` \x00\x01\x07\x1b\x1f\x7f"
SLUG_ALPHABET = string.ascii_lowercase + string.digits + "-"
PROPERTY_EXAMPLES = 2_000


def hostile_identifiers(count: int, *, seed: int) -> list[str]:
    """The Rust tests' attacks, then `count` seeded slugs each carrying a hostile character
    strictly inside it."""
    rng = random.Random(seed)
    generated = []
    for _ in range(count):
        body = "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(2, 20)))
        cut = rng.randint(1, len(body) - 1)
        generated.append(body[:cut] + rng.choice(HOSTILE_CHARACTERS) + body[cut:])
    return [*RUST_TEST_ATTACKS, *generated]


def rejected_share(identifiers: Sequence[str]) -> float:
    """Percent of `identifiers` the validator refuses with a ValidationError."""
    if not identifiers:
        raise ValueError("no identifiers to validate")
    refused = 0
    for identifier in identifiers:
        try:
            validate_any(identifier)
        except ValidationError:
            refused += 1
    return 100 * refused / len(identifiers)


def accepts_slug(raw: str) -> bool:
    """Whether the slug validator accepts `raw` (trimmed and lowercased)."""
    try:
        validate_slug(raw)
    except ValidationError:
        return False
    return True


def review_property_counterexamples(*, seed: int) -> dict[str, str | None]:
    """Per review property, the shrunk counterexample hypothesis finds (None: none found in
    PROPERTY_EXAMPLES examples). hypothesis is imported here: only this measurement needs it."""
    from hypothesis import HealthCheck, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    config = settings(
        max_examples=PROPERTY_EXAMPLES,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    candidates = {
        "every non-reserved [a-z0-9-]{1,64} is a valid slug": (
            st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True).filter(
                lambda s: s not in RESERVED_SLUGS
            ),
            lambda s: not accepts_slug(s),
        ),
        "a string with a character other than alphanumerics and '-' is rejected": (
            st.text(min_size=1, max_size=64).filter(
                lambda s: any(not (c.isalnum() or c == "-") for c in s)
            ),
            accepts_slug,
        ),
    }
    found: dict[str, str | None] = {}
    for offset, (name, (strategy, falsifies)) in enumerate(candidates.items()):
        try:
            found[name] = find(
                strategy, falsifies, settings=config, random=random.Random(seed + offset)
            )
        except NoSuchExample:
            found[name] = None
    return found
