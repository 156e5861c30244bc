"""The identifier measurements: the hostile corpus, the rejected share, and the review's
properties falsified by hypothesis."""

from __future__ import annotations

import pytest

from rustok_ref.lab.experiments import identifiers as ix


def test_hostile_identifiers_are_seeded_and_carry_a_hostile_character_inside() -> None:
    corpus = ix.hostile_identifiers(50, seed=4)
    assert corpus == ix.hostile_identifiers(50, seed=4)
    assert corpus[: len(ix.RUST_TEST_ATTACKS)] == list(ix.RUST_TEST_ATTACKS)
    for generated in corpus[len(ix.RUST_TEST_ATTACKS) :]:
        inner = generated[1:-1]
        assert any(c in ix.HOSTILE_CHARACTERS for c in inner), generated


def test_the_validator_rejects_the_whole_hostile_corpus() -> None:
    assert ix.rejected_share(ix.hostile_identifiers(300, seed=5)) == 100


def test_rejected_share_counts_what_passes() -> None:
    assert ix.rejected_share(["acme", "<script>"]) == 50
    with pytest.raises(ValueError, match="no identifiers"):
        ix.rejected_share([])


def test_both_review_properties_have_counterexamples() -> None:
    found = ix.review_property_counterexamples(seed=1)
    assert len(found) == 2
    slug_property, character_property = found.values()
    assert slug_property is not None and character_property is not None
    assert ix.accepts_slug(character_property)
    assert not ix.accepts_slug(slug_property)
