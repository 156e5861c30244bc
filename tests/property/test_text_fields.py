"""`check_text`, the one gate for free text a PostgreSQL text column stores (titles, SKUs,
reasons, tenant names): schemathesis found a NUL in a tenant name turning into a 500."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.commerce.products import check_text
from rustok_ref.errors import ValidationError

LIMIT = 64


@given(st.text(max_size=80))
def test_text_is_accepted_exactly_when_postgres_can_store_it(value: str) -> None:
    storable = (
        value.strip() != ""
        and "\x00" not in value
        and not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
        and len(value.encode("utf-8", "surrogatepass")) <= LIMIT
    )
    if storable:
        assert check_text(value, field="title", max_bytes=LIMIT) == value
    else:
        with pytest.raises(ValidationError) as refused:
            check_text(value, field="title", max_bytes=LIMIT)
        assert list(refused.value.fields) == ["title"]


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", "ok\udfff"])
def test_nul_and_lone_surrogates_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="NUL or a lone surrogate"):
        check_text(value, field="name", max_bytes=LIMIT)
