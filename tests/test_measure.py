"""Tests for tlhelpers.measure: MMD against a naive reference, the domain classifier, the probe."""
import math

import numpy as np
import pytest
import torch

import tlhelpers as tlh
from tlhelpers import measure, shifts
from tlhelpers.data import mnist5k


def _naive_mmd(x, y, gamma, unbiased=False):
    """MMD^2 with explicit double loops over Python floats: slow, obviously right."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def k(a, b):
        return math.exp(-gamma * float(((a - b) ** 2).sum()))

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if not (unbiased and i == j))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if not (unbiased and i == j))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    if unbiased:
        return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)
    return sxx / m ** 2 + syy / n ** 2 - 2 * sxy / (m * n)


@pytest.fixture(scope="module")
def mnist_halves():
    """Two disjoint sets of 300 real MNIST test digits, flattened, and 300 more for shifts."""
    x = mnist5k()[1].tensors[0]
    return x[:300], x[300:600], x[600:900]


@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_matches_naive_double_loop(unbiased):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    y = rng.normal(loc=0.7, size=(9, 3))
    for gamma in (0.05, 0.5, 2.0):
        got = measure.mmd(x, y, gamma=gamma, unbiased=unbiased)
        assert isinstance(got, float)
        assert got == pytest.approx(_naive_mmd(x, y, gamma, unbiased), rel=1e-9, abs=1e-12)


def test_mmd_accepts_tensors_and_arrays_alike_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 5, generator=g), torch.randn(30, 5, generator=g) + 0.5
    a = measure.mmd(x, y, gamma=0.3)
    assert a == pytest.approx(measure.mmd(x.numpy(), y.numpy(), gamma=0.3), rel=1e-6)
    assert a == pytest.approx(measure.mmd(y, x, gamma=0.3), rel=1e-12)
    assert measure.mmd(x.float(), y.float(), gamma=0.3) == pytest.approx(a, rel=1e-5)


def test_mmd_of_single_points_is_closed_form():
    # One point each at distance 1: k(x,x) + k(y,y) - 2 k(x,y) = 2 - 2 exp(-gamma).
    assert measure.mmd(torch.tensor([[0.0]]), torch.tensor([[1.0]]), gamma=1.0) == pytest.approx(2 - 2 / math.e)


def test_mmd_of_identical_samples():
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
    assert measure.mmd(x, x, gamma=0.5) == pytest.approx(0.0, abs=1e-12)  # V-statistic: exactly 0
    # U-statistic: slightly negative, -2/m * (1 - mean off-diagonal kernel).
    assert -2 / 40 <= measure.mmd(x, x, gamma=0.5, unbiased=True) <= 0


def test_median_heuristic_matches_definition():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(15, 4)), rng.normal(size=(10, 4))
    z = np.r_[x, y]
    d2 = [((z[i] - z[j]) ** 2).sum() for i in range(25) for j in range(i + 1, 25)]
    assert measure.median_heuristic_gamma(x, y) == pytest.approx(1 / (2 * np.median(d2)), rel=1e-9)
    # mmd(gamma=None) uses it.
    assert measure.mmd(x, y) == pytest.approx(measure.mmd(x, y, gamma=1 / (2 * np.median(d2))), rel=1e-9)


def test_mmd_near_zero_for_same_domain_and_grows_with_shift(mnist_halves):
    a, b, c = mnist_halves
    gamma = measure.median_heuristic_gamma(a.flatten(1))
    same = measure.mmd(a.flatten(1), b.flatten(1), gamma=gamma, unbiased=True)
    shifted = [measure.mmd(a.flatten(1), shifts.rotate(c, deg).flatten(1), gamma=gamma, unbiased=True)
               for deg in (0, 20, 45, 90)]
    assert abs(same) < 0.01, same
    assert abs(shifted[0]) < 0.01
    assert shifted[0] < shifted[1] < shifted[2] < shifted[3], shifted
    noise = [measure.mmd(a.flatten(1), shifts.add_noise(c, s).flatten(1), gamma=gamma) for s in (0.1, 0.3, 0.6)]
    assert noise[0] < noise[1] < noise[2], noise
    assert shifted[3] > 5 * max(abs(same), 1e-3)


def test_mmd_detects_a_mean_shift_in_gaussians():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 2, generator=g)
    values = [measure.mmd(x, torch.randn(200, 2, generator=g) + shift, gamma=0.5, unbiased=True)
              for shift in (0.0, 0.5, 1.0, 2.0)]
    assert abs(values[0]) < 0.02 and values[0] < values[1] < values[2] < values[3], values


def test_domain_classifier_chance_on_one_domain_and_one_on_different(mnist_halves):
    a, b, c = mnist_halves
    same = measure.domain_classifier_accuracy(a.flatten(1), b.flatten(1))
    far = measure.domain_classifier_accuracy(a.flatten(1), shifts.invert(c).flatten(1))
    assert 0.35 < same < 0.65, same
    assert far > 0.97, far
    assert measure.domain_classifier_accuracy(a.flatten(1), b.flatten(1)) == same, "must repeat exactly"


def test_domain_classifier_is_balanced_for_unequal_sizes():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(60, 3, generator=g), torch.randn(240, 3, generator=g)
    acc = measure.domain_classifier_accuracy(x, y, max_points=None)
    assert 0.3 < acc < 0.7, f"chance must stay at 0.5 with a 1:4 imbalance, got {acc}"


@pytest.mark.parametrize("call, message", [
    (lambda: measure.mmd(torch.zeros(5, 3), torch.zeros(5, 4), gamma=1.0), "same number of features"),
    (lambda: measure.mmd(torch.zeros(5, 1, 2, 2), torch.zeros(5, 4), gamma=1.0), r"\(n, d\)"),
    (lambda: measure.mmd(torch.rand(5, 3), torch.rand(5, 3), gamma=0), "gamma"),
    (lambda: measure.mmd([[1.0, 2.0]], torch.rand(5, 2)), "numpy array"),
    (lambda: measure.mmd(torch.rand(1, 3), torch.rand(5, 3), gamma=1.0, unbiased=True), "at least 2"),
    (lambda: measure.mmd(torch.rand(0, 3), torch.rand(5, 3), gamma=1.0), "at least 1"),
    (lambda: measure.mmd(torch.full((4, 2), float("nan")), torch.rand(5, 2)), "NaN"),
    (lambda: measure.mmd(torch.zeros(4, 2), torch.zeros(4, 2)), "distinct points"),
    (lambda: measure.domain_classifier_accuracy(torch.rand(9, 3), torch.rand(9, 2)), "same number of features"),
    (lambda: measure.domain_classifier_accuracy(torch.rand(9, 3), torch.rand(9, 3), folds=1), "folds"),
    (lambda: measure.domain_classifier_accuracy(torch.rand(3, 3), torch.rand(9, 3)), "at least folds"),
])
def test_bad_input_raises_with_a_useful_message(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ---------------------------------------------------------------- linear probe
def _blobs(n_per_class, shift, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(n_per_class, 5, generator=g) + shift * k for k in range(3)])
    return x, torch.arange(3).repeat_interleave(n_per_class)


def test_linear_probe_reads_separable_features_and_not_noise():
    x, y = _blobs(20, 6.0, 0)
    xt, yt = _blobs(50, 6.0, 1)
    assert tlh.linear_probe(x, y, xt, yt) == 1.0
    shuffled = yt[torch.randperm(len(yt), generator=torch.Generator().manual_seed(0))]
    assert tlh.linear_probe(x, y, xt, shuffled) < 0.6, "labels unrelated to the features score near chance (1/3)"


def test_linear_probe_standardises_so_feature_scale_does_not_matter():
    x, y = _blobs(10, 1.0, 2)
    xt, yt = _blobs(50, 1.0, 3)
    scale = torch.tensor([1e-3, 1.0, 1e3, 1.0, 10.0])
    assert tlh.linear_probe(x, y, xt, yt) == tlh.linear_probe(x * scale, y, xt * scale, yt)


@pytest.mark.parametrize("change, match", [({"train_labels": torch.zeros(60, dtype=torch.long)}, "two classes"),
                                           ({"test_labels": torch.zeros(3, dtype=torch.long)}, "test_labels"),
                                           ({"C": 0}, "C must be"), ({"train_labels": torch.rand(60)}, "integer")])
def test_linear_probe_rejects_bad_input(change, match):
    x, y = _blobs(20, 3.0, 0)
    args = {"train_features": x, "train_labels": y, "test_features": x, "test_labels": y, **change}
    with pytest.raises(ValueError, match=match):
        tlh.linear_probe(**args)
