"""Properties of the verdict rules: each rule means what its name says, a better figure never
earns a worse verdict, and nothing that is not a number is ever judged."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rustok_ref.lab.claims import CLAIMS
from rustok_ref.lab.summary import AtLeast, AtMost, Equals, NotMeasurable, Verdict, WithinRatio

RANK = {Verdict.CONFIRMED: 0, Verdict.PARTIAL: 1, Verdict.REFUTED: 2}
JUDGED = set(RANK)

figures = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
gaps = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
not_numbers = st.sampled_from([float("nan"), float("inf"), float("-inf")])


@st.composite
def at_most_rules(draw: st.DrawFn) -> AtMost:
    limit = draw(figures)
    gap = draw(st.none() | gaps)
    return AtMost(limit, None if gap is None else limit + gap)


@st.composite
def at_least_rules(draw: st.DrawFn) -> AtLeast:
    limit = draw(figures)
    gap = draw(st.none() | gaps)
    return AtLeast(limit, None if gap is None else limit - gap)


ratio_rules = st.builds(
    WithinRatio,
    target=figures.filter(lambda target: abs(target) >= 1e-3),
    tolerance=st.floats(min_value=1e-3, max_value=1.0),
)
rules = st.one_of(
    at_most_rules(),
    at_least_rules(),
    ratio_rules,
    st.builds(Equals, figures),
    st.builds(NotMeasurable, st.text(min_size=1)),
)


@given(at_most_rules(), figures)
def test_at_most_confirms_exactly_up_to_its_limit(rule: AtMost, figure: float) -> None:
    assert (rule.evaluate(figure) is Verdict.CONFIRMED) == (figure <= rule.limit)


@given(at_most_rules(), figures)
def test_at_most_is_partial_only_between_its_limits(rule: AtMost, figure: float) -> None:
    partial = rule.partial_limit is not None and rule.limit < figure <= rule.partial_limit
    assert (rule.evaluate(figure) is Verdict.PARTIAL) == partial


@given(at_most_rules(), figures, figures)
def test_lowering_a_figure_never_worsens_an_at_most_verdict(
    rule: AtMost, a: float, b: float
) -> None:
    lower, higher = sorted((a, b))
    assert RANK[rule.evaluate(lower)] <= RANK[rule.evaluate(higher)]


@given(at_least_rules(), figures)
def test_at_least_confirms_exactly_from_its_limit(rule: AtLeast, figure: float) -> None:
    assert (rule.evaluate(figure) is Verdict.CONFIRMED) == (figure >= rule.limit)


@given(at_least_rules(), figures)
def test_at_least_is_partial_only_between_its_limits(rule: AtLeast, figure: float) -> None:
    partial = rule.partial_limit is not None and rule.partial_limit <= figure < rule.limit
    assert (rule.evaluate(figure) is Verdict.PARTIAL) == partial


@given(at_least_rules(), figures, figures)
def test_raising_a_figure_never_worsens_an_at_least_verdict(
    rule: AtLeast, a: float, b: float
) -> None:
    lower, higher = sorted((a, b))
    assert RANK[rule.evaluate(higher)] <= RANK[rule.evaluate(lower)]


@given(figures, figures)
def test_equals_confirms_only_its_value(value: float, figure: float) -> None:
    assert (Equals(value).evaluate(figure) is Verdict.CONFIRMED) == (figure == value)


@given(ratio_rules)
def test_within_ratio_confirms_its_target(rule: WithinRatio) -> None:
    assert rule.evaluate(rule.target) is Verdict.CONFIRMED


@given(
    ratio_rules,
    st.floats(min_value=0, max_value=10),
    st.floats(min_value=0, max_value=10),
    st.sampled_from([1, -1]),
)
def test_moving_away_from_the_target_never_improves_a_ratio_verdict(
    rule: WithinRatio, a: float, b: float, side: int
) -> None:
    near, far = sorted((a, b))
    step = side * abs(rule.target)
    assert (
        RANK[rule.evaluate(rule.target + near * step)]
        <= RANK[rule.evaluate(rule.target + far * step)]
    )


@given(ratio_rules, st.floats(min_value=0, max_value=10))
def test_within_ratio_bands_are_the_tolerance_and_twice_it(rule: WithinRatio, k: float) -> None:
    # Stay clear of the band edges, where the deviation's rounding decides.
    deviation = k * rule.tolerance
    assume(min(abs(deviation - rule.tolerance), abs(deviation - 2 * rule.tolerance)) > 1e-6)
    verdict = rule.evaluate(rule.target + deviation * abs(rule.target))
    expected = (
        Verdict.CONFIRMED
        if deviation < rule.tolerance
        else Verdict.PARTIAL
        if deviation < 2 * rule.tolerance
        else Verdict.REFUTED
    )
    assert verdict is expected


@given(rules, not_numbers)
def test_no_rule_judges_nan_or_infinity(
    rule: AtMost | AtLeast | Equals | WithinRatio | NotMeasurable, figure: float
) -> None:
    with pytest.raises(ValueError, match="finite"):
        rule.evaluate(figure)


@given(st.sampled_from(sorted(CLAIMS)), figures)
def test_every_registered_claim_judges_any_number(claim_id: str, figure: float) -> None:
    claim = CLAIMS[claim_id]
    if claim.measurable:
        assert claim.verdict_for(figure) in JUDGED
        assert claim.verdict_for(None) is Verdict.NOT_YET_MEASURED
    else:
        assert claim.verdict_for(None) is Verdict.NOT_MEASURABLE


@given(st.sampled_from(sorted(CLAIMS)), not_numbers)
def test_no_registered_claim_judges_nan_or_infinity(claim_id: str, figure: float) -> None:
    with pytest.raises(ValueError, match=r"finite|not measurable"):
        CLAIMS[claim_id].verdict_for(figure)


@given(figures, gaps)
def test_a_partial_band_on_the_wrong_side_is_refused(limit: float, gap: float) -> None:
    with pytest.raises(ValueError, match="must exceed"):
        AtMost(limit, limit - gap)
    with pytest.raises(ValueError, match="must be below"):
        AtLeast(limit, limit + gap)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: WithinRatio(0, 0.1), "must not be 0"),
        (lambda: WithinRatio(10, 0), "must be positive"),
        (lambda: WithinRatio(10, -0.1), "must be positive"),
        (lambda: AtMost(float("nan")), "limit must be a finite number"),
        (lambda: AtLeast(1, float("inf")), "partial_limit must be a finite number"),
        (lambda: Equals(float("nan")), "value must be a finite number"),
    ],
)
def test_a_rule_that_cannot_judge_is_refused(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
