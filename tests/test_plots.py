"""plots: every function draws what it was given (checked on the returned artists), bad input raises."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import tlhelpers as tlh  # noqa: E402


def _shown(fig: Figure) -> list[np.ndarray]:
    """The image arrays drawn in a figure, in axes order."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def test_plot_curves_draws_one_labelled_line_per_curve():
    curves = {"transfer": ([1, 5, 10], [0.4, 0.7, 0.8]), "scratch": ([1, 5, 10], [0.2, 0.4, 0.6])}
    ax = tlh.plot_curves(curves, xlabel="labels per class", ylabel="accuracy", title="t", logx=True)
    assert isinstance(ax, Axes)
    assert [line.get_label() for line in ax.lines] == ["transfer", "scratch"]
    for line, (x, y) in zip(ax.lines, curves.values()):
        assert list(line.get_xdata()) == x and list(line.get_ydata()) == y
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["transfer", "scratch"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "labels per class" and ax.get_title() == "t"


def test_plot_curves_draws_on_a_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    assert tlh.plot_curves({"a": ([0, 1], [1, 2])}, xlabel="x", ylabel="y", ax=right) is right
    assert len(right.lines) == 1 and len(left.lines) == 0
    assert right.get_xscale() == "linear"


def test_plot_curves_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        tlh.plot_curves({"a": ([1, 2, 3], [0.1, 0.2])}, xlabel="x", ylabel="y")


def test_plot_history_plots_the_metric_against_epochs():
    runs = {"probe": tlh.History(train_loss=[1, 0.5, 0.3], train_acc=[0.5, 0.6, 0.7],
                                 val_loss=[1.1, 0.9, 0.8], val_acc=[0.4, 0.5, 0.55]),
            "finetune": tlh.History(train_loss=[1, 0.2], train_acc=[0.5, 0.9],
                                    val_loss=[1.0, 0.7], val_acc=[0.45, 0.6])}
    ax = tlh.plot_history(runs)
    assert [line.get_label() for line in ax.lines] == ["probe", "finetune"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    assert list(ax.lines[1].get_ydata()) == [0.45, 0.6]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val acc"
    ax = tlh.plot_history(runs, metric="train_loss")
    assert list(ax.lines[0].get_ydata()) == [1, 0.5, 0.3]


def test_plot_history_bad_input_raises():
    trained_without_validation = {"run": tlh.History(train_loss=[1.0], train_acc=[0.5])}
    with pytest.raises(ValueError, match="val_data"):
        tlh.plot_history(trained_without_validation)
    with pytest.raises(ValueError) as err:
        tlh.plot_history(trained_without_validation, metric="accuracy")
    assert "'accuracy'" in str(err.value) and "val_acc" in str(err.value)


def test_plot_confusion_matrix_draws_the_counts():
    from sklearn.metrics import confusion_matrix

    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    ax = tlh.plot_confusion_matrix(torch.tensor(y_true), torch.tensor(y_pred), labels=["a", "b", "c"])
    drawn = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(drawn, confusion_matrix(y_true, y_pred))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_ylabel() == "True label"
    assert len([t for t in ax.texts if t.get_text()]) == 9  # a count in every cell


def test_plot_confusion_matrix_bad_input_raises():
    with pytest.raises(ValueError):
        tlh.plot_confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError):
        tlh.plot_confusion_matrix([0, 1, 2], [0, 1, 1], labels=["only", "two"])


def test_show_images_draws_each_image_rescaled():
    images = torch.rand(5, 1, 8, 8) * 3 + 2  # values outside [0, 1]
    fig = tlh.show_images(images, titles=list("abcde"), ncols=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6  # a 2 x 3 grid, the last cell empty
    shown = _shown(fig)
    assert len(shown) == 5
    for array, image in zip(shown, images):
        expected = (image[0] - image.min()) / (image.max() - image.min() + 1e-8)
        np.testing.assert_allclose(array, expected.numpy(), atol=1e-6)
    assert [ax.get_title() for ax in fig.axes[:5]] == list("abcde")


def test_show_images_colour_is_shown_as_rgb():
    fig = tlh.show_images(torch.rand(2, 3, 6, 7))
    assert [a.shape for a in _shown(fig)] == [(6, 7, 3), (6, 7, 3)]


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), np.zeros((2, 1, 8, 8)), torch.rand(0, 1, 8, 8)])
def test_show_images_bad_input_raises(bad):
    with pytest.raises(ValueError, match="images"):
        tlh.show_images(bad)


def test_show_images_too_few_titles_raise():
    with pytest.raises(ValueError, match="titles"):
        tlh.show_images(torch.rand(3, 1, 4, 4), titles=["one"])


def test_show_filters_shows_every_filter():
    weight = torch.randn(16, 3, 3, 3)
    fig = tlh.show_filters(weight)
    shown = _shown(fig)
    assert len(shown) == 16 and shown[0].shape == (3, 3, 3)
    deep = tlh.show_filters(torch.randn(4, 32, 3, 3), ncols=4)  # many input channels: the first one
    shown = _shown(deep)
    assert len(shown) == 4 and shown[0].shape == (3, 3)
    with pytest.raises(ValueError, match="conv weight"):
        tlh.show_filters(torch.randn(16, 27))


def test_show_filters_of_the_pretrained_stem(lite0):
    fig = tlh.show_filters(lite0.stem[0].weight.detach())
    assert len(_shown(fig)) == 32


def test_show_feature_maps_shows_the_first_n_channels():
    maps = torch.rand(12, 7, 7)
    fig = tlh.show_feature_maps(maps, n=5, title="blocks.3")
    shown = _shown(fig)
    assert len(shown) == 5
    expected = (maps[4] - maps[4].min()) / (maps[4].max() - maps[4].min() + 1e-8)
    np.testing.assert_allclose(shown[4], expected.numpy(), atol=1e-6)
    assert fig._suptitle.get_text() == "blocks.3"
    with pytest.raises(ValueError, match="feature maps"):
        tlh.show_feature_maps(torch.rand(1, 12, 7, 7))


def test_plot_topk_draws_the_k_most_probable_classes():
    probs = torch.tensor([0.05, 0.5, 0.1, 0.3, 0.05])
    names = ["cat", "dog", "fox", "owl", "eel"]
    ax = tlh.plot_topk(probs, names, k=3)
    bars = ax.patches
    assert len(bars) == 3
    # most probable at the top (drawn last by barh)
    assert [round(b.get_width(), 6) for b in bars] == [0.1, 0.3, 0.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fox", "owl", "dog"]
    assert ax.get_xlim() == (0.0, 1.0)


@pytest.mark.parametrize("k, names", [(6, list("abcde")), (0, list("abcde")), (2, list("abcd"))])
def test_plot_topk_bad_input_raises(k, names):
    with pytest.raises(ValueError):
        tlh.plot_topk(torch.full((5,), 0.2), names, k=k)


def test_plot_grid_writes_every_value_in_its_cell():
    values = np.array([[0.91, 0.42], [0.63, 0.87]])
    ax = tlh.plot_grid(values, row_labels=["small", "large"], col_labels=["similar", "different"],
                       title="winners")
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), values)
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    assert texts == {((0, 0), "91.0%"), ((1, 0), "42.0%"), ((0, 1), "63.0%"), ((1, 1), "87.0%")}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["small", "large"]
    assert ax.get_title() == "winners"
    ax = tlh.plot_grid(values, row_labels=["a", "b"], col_labels=["c", "d"], fmt="{:.2f}")
    assert sorted(t.get_text() for t in ax.texts) == ["0.42", "0.63", "0.87", "0.91"]


def test_plot_grid_rejects_a_shape_mismatch():
    with pytest.raises(ValueError, match="do not match"):
        tlh.plot_grid(np.zeros((2, 3)), row_labels=["a", "b"], col_labels=["c", "d"])
