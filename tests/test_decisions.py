"""Tests for tlh.decide, the course's one rule: against a plain-Python reference, and on its edges."""
import math
import statistics

import numpy as np
import pytest
import torch

import tlhelpers as tlh


def _reference(a, b, n_test=None):
    """The rule as the docstring states it, with the standard library only."""
    d = [x - y for x, y in zip(a, b)]
    lead = sum(d) / len(d)
    margin = statistics.stdev(d)
    if n_test is not None:
        p = (sum(a) + sum(b)) / (2 * len(a))
        margin = max(margin, math.sqrt(p * (1 - p) / n_test))
    if lead > margin and all(x > 0 for x in d):
        return "win", lead, margin
    if lead < -margin and all(x < 0 for x in d):
        return "lose", lead, margin
    return "inconclusive", lead, margin


@pytest.mark.parametrize("n_test", [None, 50, 500, 5000])
def test_matches_the_reference_on_random_seeds(n_test):
    rng = np.random.default_rng(0)
    verdicts = set()
    for _ in range(300):
        seeds = int(rng.integers(3, 7))
        b = rng.uniform(0.5, 0.9, seeds)
        a = np.clip(b + rng.normal(rng.normal(0, 0.04), 0.02, seeds), 0, 1)
        got = tlh.decide(a, b, n_test=n_test)
        want = _reference(a.tolist(), b.tolist(), n_test)
        assert got.verdict == want[0]
        assert got.lead == pytest.approx(want[1]) and got.margin == pytest.approx(want[2])
        verdicts.add(got.verdict)
    assert verdicts == {"win", "lose", "inconclusive"}, "the random cases should reach all three verdicts"


def test_a_decision_is_a_tuple_with_names():
    decision = tlh.decide([0.8, 0.82, 0.81], [0.7, 0.71, 0.69])
    verdict, lead, margin = decision
    assert (verdict, decision.verdict) == ("win", "win")
    assert lead == pytest.approx(0.11) and margin == pytest.approx(statistics.stdev([0.1, 0.11, 0.12]))


def test_swapping_the_arms_swaps_the_verdict():
    a, b = [0.8, 0.82, 0.81], [0.7, 0.71, 0.69]
    assert tlh.decide(b, a).verdict == "lose"
    assert tlh.decide(b, a).lead == pytest.approx(-tlh.decide(a, b).lead)


def test_one_seed_against_the_others_makes_it_inconclusive():
    """A large mean lead does not win when one seed points the other way."""
    a, b = [0.90, 0.90, 0.90, 0.90, 0.69], [0.70] * 5
    d = np.subtract(a, b)
    assert d.mean() > d.std(ddof=1), "the mean alone would clear the spread"
    assert tlh.decide(a, b).verdict == "inconclusive"


def test_the_test_set_noise_can_outweigh_a_steady_lead():
    """Seeds that agree closely still share one test set: 1 point on 500 examples is within its noise."""
    a, b = [0.861, 0.862, 0.860], [0.851, 0.850, 0.851]
    assert tlh.decide(a, b).verdict == "win"
    decision = tlh.decide(a, b, n_test=500)
    assert decision.verdict == "inconclusive"
    assert decision.margin == pytest.approx(math.sqrt(0.8558 * 0.1442 / 500), rel=1e-3)
    assert tlh.decide(a, b, n_test=100_000).verdict == "win"


def test_lower_is_better_for_losses():
    losses_a, losses_b = [0.30, 0.31, 0.29], [0.50, 0.52, 0.49]
    decision = tlh.decide(losses_a, losses_b, higher_is_better=False)
    assert decision.verdict == "win" and decision.lead == pytest.approx(0.2033, abs=1e-3)
    assert tlh.decide(losses_a, losses_b).verdict == "lose"


def test_accepts_tensors_and_numpy():
    a, b = [0.8, 0.82, 0.81], [0.7, 0.71, 0.69]
    want = tlh.decide(a, b)
    assert tlh.decide(torch.tensor(a), np.array(b))[1:] == pytest.approx(want[1:])
    assert tlh.decide(torch.tensor(a), np.array(b)).verdict == want.verdict


@pytest.mark.parametrize("call, words", [
    (lambda: tlh.decide([0.8, 0.9], [0.7, 0.8]), "at least 3 seeds"),
    (lambda: tlh.decide([0.8, 0.9, 0.7], [0.7, 0.8]), "paired"),
    (lambda: tlh.decide([80, 90, 70], [70, 80, 60], n_test=100), "divide percentages"),
    (lambda: tlh.decide([0.8, float("nan"), 0.7], [0.7, 0.8, 0.6]), "finite"),
    (lambda: tlh.decide([[0.8, 0.9, 0.7]], [[0.7, 0.8, 0.6]]), "flat list"),
    (lambda: tlh.decide([0.8, 0.9, 0.7], [0.7, 0.8, 0.6], n_test=0), "n_test"),
])
def test_bad_input_names_the_problem(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_higher_is_better_must_be_a_bool():
    with pytest.raises(TypeError, match="True or False"):
        tlh.decide([0.8, 0.9, 0.7], [0.7, 0.8, 0.6], higher_is_better="yes")


def test_the_verb_words_the_verdict_for_a_sentence():
    a, b = [0.8, 0.82, 0.81], [0.7, 0.71, 0.69]
    assert f"A {tlh.decide(a, b).verb} B" == "A beats B"
    assert f"B {tlh.decide(b, a).verb} A" == "B loses to A"
    assert tlh.decide(a, a).verb == "is within noise of"
