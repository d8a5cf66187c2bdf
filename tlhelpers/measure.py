"""How far apart two domains are, and what frozen features are worth: MMD, a domain classifier, a probe.

All functions take samples as (n, d) tensors or arrays: one row per example, one column
per feature (flatten images first, or pass features from a backbone layer).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .arguments import number, whole

# Pairwise distances for the median heuristic come from at most this many points, so
# the bandwidth costs the same for large samples (a deterministic, evenly spaced subset).
_MEDIAN_POINTS = 1000


def _as_2d(name: str, value, min_rows: int = 1) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
    elif isinstance(value, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(value))
    else:
        raise TypeError(f"{name} must be an (n, d) torch.Tensor or numpy array, got {type(value).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d): one row per example (flatten images with "
                         f".flatten(1)); got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} example(s), got {t.shape[0]}")
    if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise ValueError(f"{name} must hold numbers, got dtype {t.dtype}")
    t = t.double()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _pair(x, y, min_rows: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_2d("x", x, min_rows), _as_2d("y", y, min_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of features, got x with {x.shape[1]} and "
                         f"y with {y.shape[1]} (shapes {tuple(x.shape)} and {tuple(y.shape)})")
    return x, y


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the matrix of squared Euclidean distances ||a_i - b_j||^2 (float64, >= 0)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_(min=0.0)


def median_heuristic_gamma(x, y=None) -> float:
    """Return the median-heuristic RBF width ``gamma = 1 / (2 * sigma^2)`` for x (and y, pooled).

    ``sigma^2`` is the median squared distance between distinct points of the pooled
    sample (from at most 1,000 evenly spaced points), so ``k(a, b) = exp(-gamma ||a - b||^2)
    = exp(-||a - b||^2 / (2 sigma^2))``: the usual default bandwidth (Gretton et al., 2012).
    Passing only ``x`` (e.g. the source sample) gives one gamma to reuse for every pair.
    """
    pooled = _as_2d("x", x, 2) if y is None else torch.cat(_pair(x, y))
    if len(pooled) > _MEDIAN_POINTS:
        pooled = pooled[torch.linspace(0, len(pooled) - 1, _MEDIAN_POINTS).long()]
    d = _sq_dists(pooled, pooled)
    iu = torch.triu_indices(len(pooled), len(pooled), offset=1)
    med = torch.quantile(d[iu[0], iu[1]], 0.5).item()  # averages the middle two, as numpy does
    if med <= 0:
        raise ValueError("the median heuristic needs distinct points: over half of the pairs are identical; "
                         "pass gamma explicitly")
    return 1.0 / (2.0 * med)


def mmd(x, y, *, gamma: float | None = None, unbiased: bool = False) -> float:
    """Return the squared maximum mean discrepancy (MMD^2) between samples x and y, RBF kernel.

    Lesson: 01-domains-and-tasks builds this (exercise ``mmd``, without ``unbiased``).

    ``k(a, b) = exp(-gamma * ||a - b||^2)``. MMD^2 is the squared distance between the
    mean kernel embeddings of the two samples:
    ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``.
    0 when the samples come from one distribution (for large samples), larger as they differ.

    Args:
        x, y: (m, d) and (n, d) samples; m and n may differ.
        gamma: kernel width; default: :func:`median_heuristic_gamma` of the pooled sample.
            Compare several pairs with ONE fixed gamma, or their values are on different scales.
        unbiased: False (default): the biased "V-statistic", all pairs incl. i == j; always
            >= 0, exactly 0 for identical samples, but with a small positive bias of order
            1/m + 1/n, so compare pairs of equal sample sizes. True: the unbiased
            "U-statistic" (Gretton et al., 2012, eq. 3), which leaves out i == j within a
            sample; its mean is the true MMD^2, and it can be slightly negative.

    Returns:
        MMD^2 as a float.
    """
    x, y = _pair(x, y, 2 if unbiased else 1)  # the unbiased form averages over i != j
    if gamma is None:
        gamma = median_heuristic_gamma(x, y)
    try:
        gamma = number("gamma", gamma, positive=True)
    except TypeError as exc:  # None was handled above: say what else would do
        raise ValueError(f"{exc} (or None for the median heuristic)") from None
    k_xx = torch.exp(-gamma * _sq_dists(x, x))
    k_yy = torch.exp(-gamma * _sq_dists(y, y))
    k_xy = torch.exp(-gamma * _sq_dists(x, y))
    m, n = len(x), len(y)
    if unbiased:
        term_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
        term_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    else:
        term_x, term_y = k_xx.mean(), k_yy.mean()
    return float(term_x + term_y - 2.0 * k_xy.mean())


def domain_classifier_accuracy(x, y, *, seed: int = 0, folds: int = 5, max_points: int | None = 2000) -> float:
    """Return how well a classifier tells sample x from sample y: 0.5 = indistinguishable, 1.0 = separable.

    The "proxy A-distance" idea (Ben-David et al., 2007): label x as 0 and y as 1, train
    a logistic regression (on standardised features) and report its cross-validated
    *balanced* accuracy, so unequal sample sizes do not move the chance level from 0.5.
    The proxy A-distance itself is ``2 * (2 * accuracy - 1)``.

    Args:
        x, y: (m, d) and (n, d) samples.
        seed: fixes the stratified folds (results repeat exactly).
        folds: cross-validation folds (>= 2; each sample needs at least this many rows).
        max_points: use at most this many rows of each sample (an evenly spaced subset),
            which bounds the time; None uses all.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    x, y = _pair(x, y, 2)
    seed = whole("seed", seed)
    folds = whole("folds", folds, low=2)
    max_points = whole("max_points", max_points, low=folds, none_ok=True)
    if max_points is not None:
        x, y = (s[torch.linspace(0, len(s) - 1, max_points).long()] if len(s) > max_points else s for s in (x, y))
    if min(len(x), len(y)) < folds:
        raise ValueError(f"each sample needs at least folds={folds} rows, got {len(x)} and {len(y)}")
    features = torch.cat([x, y]).float().numpy()
    labels = np.r_[np.zeros(len(x), dtype=np.int64), np.ones(len(y), dtype=np.int64)]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    cv = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed))
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        # One BLAS thread: these problems are small, threads only add overhead (and can
        # stall badly on a busy shared CPU), and the folds then repeat bit for bit.
        # Fully separable domains never converge (weights grow without bound), but the
        # accuracy has long reached 1.0: the warning says nothing about the answer.
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, features, labels, cv=cv, scoring="balanced_accuracy")
    return float(scores.mean())


def linear_probe(train_features, train_labels, test_features, test_labels, *, C: float = 1.0,
                 max_iter: int = 1000) -> float:
    """Return the test accuracy of a linear classifier trained on frozen features: the course's one probe.

    The recipe is fixed so probe accuracies compare across notebooks: standardise each
    feature on the training set, then multinomial logistic regression with L2 strength
    ``1 / C``. Notebook 03 trains a linear head by hand (``train_linear_head``); every probe
    the notebooks compare is this one, so accuracies are comparable across notebooks.

    Args:
        train_features, test_features: (n, d) tensors or arrays with the same d.
        train_labels, test_labels: one integer class per row.
        C: inverse regularisation strength (smaller = stronger; few labels want small C).

    Raises:
        ValueError: for mismatched shapes, fewer than two classes in training, or a bad C.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test = _pair(train_features, test_features)
    y_train, y_test = (_labels(name, y, len(x)) for name, y, x in
                       (("train_labels", train_labels, x_train), ("test_labels", test_labels, x_test)))
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"a probe needs at least two classes in train_labels, got {np.unique(y_train).tolist()}")
    C = number("C", C, positive=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(C), max_iter=int(max_iter)))
    with warnings.catch_warnings():
        # Few-shot training sets are often separable; the accuracy is settled long before
        # the weights stop growing.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train.float().numpy(), y_train)
    return float((model.predict(x_test.float().numpy()) == y_test).mean())


def _labels(name: str, labels, rows: int) -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array of length ``rows``."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1 or len(array) != rows or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be {rows} integer class labels (one per row), got "
                         f"shape {array.shape} dtype {array.dtype}")
    return array.astype(np.int64)
