"""features: extract_features against a manual forward pass, the model left untouched, the
content-keyed cache (hits, misses, switches, corrupt files), body and feature_model."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import tlhelpers as tlh
from tlhelpers import features

from support.calls import count_calls


def _small(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = tlh.SmallCNN(width=4)
    # give BatchNorm non-trivial statistics, so a train-mode forward would be visible
    with torch.no_grad():
        model.train()(torch.rand(16, 1, 28, 28))
    return model.eval()


@pytest.fixture
def images():
    return torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def count_computes(monkeypatch):
    """Count the real feature computations (cache misses)."""
    return count_calls(monkeypatch, features, "_compute")


def _extract(model, images, layer, **kwargs):
    kwargs.setdefault("progress", False)
    return tlh.extract_features(model, images, layer=layer, **kwargs)


# ---------------------------------------------------------------- reference checks
def test_fc1_features_equal_a_forward_pass_with_the_head_removed(images):
    model = _small()
    reference = copy.deepcopy(model)
    reference.fc = nn.Identity()
    with torch.no_grad():
        expected = reference(images)
    got = _extract(model, images, "fc1", cache=False)
    assert got.shape == (10, 128) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_conv3_features_equal_a_pooled_manual_forward(images):
    model = _small()
    with torch.no_grad():
        maps = model.conv3(model.conv2(model.conv1(images)))
    pooled = _extract(model, images, "conv3", cache=False)
    flat = _extract(model, images, "conv3", pool=False, cache=False)
    torch.testing.assert_close(pooled, maps.mean(dim=(2, 3)), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(flat, maps.flatten(1), atol=1e-5, rtol=1e-4)


def test_features_use_eval_mode_even_for_a_model_in_train_mode(images):
    model = _small().train()
    got = _extract(model, images, "fc1", cache=False)
    model.eval()
    reference = copy.deepcopy(model)
    reference.fc = nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(got, reference(images), atol=1e-5, rtol=1e-4)


def test_lite0_head_features_equal_the_pooled_head_output(lite0):
    x = tlh.preprocess(torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)), size=32)
    reference = copy.deepcopy(lite0).eval()
    reference.fc = nn.Identity()  # dropout is the identity in eval mode
    with torch.no_grad():
        expected = reference(x)
        block8 = lite0.blocks[:9](lite0.stem(x)).mean(dim=(2, 3))
    got = _extract(lite0, x, "head", cache=False)
    assert got.shape == (3, 1280)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
    got8 = _extract(lite0, x, "blocks.8", cache=False)
    assert got8.shape == (3, 112)
    torch.testing.assert_close(got8, block8, atol=1e-4, rtol=1e-3)


def test_batch_size_does_not_change_the_features(images):
    model = _small()
    torch.testing.assert_close(_extract(model, images, "conv2", batch_size=3, cache=False),
                               _extract(model, images, "conv2", batch_size=128, cache=False))


def test_extract_features_leaves_the_model_untouched(images):
    """Same weights, same memory layout, same mode, same flags: later results cannot depend on
    whether features came from the cache (a cold run) or were computed (a warm one)."""
    model = _small()
    tlh.freeze(model, names=["conv1"])
    for mode in (True, False):
        model.train(mode)
        state = {k: (v.clone(), v.stride(), v.device) for k, v in model.state_dict().items()}
        flags = {n: p.requires_grad for n, p in model.named_parameters()}
        modes = {n: m.training for n, m in model.named_modules()}
        _extract(model, images, "conv3", cache=False, device="cpu")
        for key, (value, stride, device) in state.items():
            now = model.state_dict()[key]
            assert torch.equal(now, value) and now.stride() == stride and now.device == device, key
        assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
        assert {n: m.training for n, m in model.named_modules()} == modes


# ---------------------------------------------------------------- bad input
def test_unknown_layer_lists_the_valid_names(images):
    with pytest.raises(ValueError) as err:
        _extract(_small(), images, "conv4")
    message = str(err.value)
    assert "'conv4'" in message
    for name in tlh.SmallCNN.layer_names:
        assert repr(name) in message


def test_bad_arguments_raise(images):
    model = _small()
    with pytest.raises(TypeError, match="layer"):
        _extract(model, images, 3)
    with pytest.raises(ValueError, match="images"):
        _extract(model, images.numpy(), "fc1")
    with pytest.raises(ValueError, match="images"):
        _extract(model, torch.rand(5), "fc1")
    with pytest.raises(ValueError, match="batch_size"):
        _extract(model, images, "fc1", batch_size=0)


# ---------------------------------------------------------------- the cache
def test_second_call_is_served_from_the_cache(images, clean_env, monkeypatch):
    model = _small()
    first = _extract(model, images, "fc1")
    files = list(clean_env.glob("*.pt"))
    assert len(files) == 1, "the first call should write one cache file into TLH_CACHE_DIR"

    def no_compute(*args, **kwargs):
        raise AssertionError("computed although the cache holds these features")
    monkeypatch.setattr(features, "_compute", no_compute)
    second = _extract(model, images, "fc1")
    assert torch.equal(first, second)
    assert torch.equal(_extract(copy.deepcopy(model), images.clone(), "fc1"), first)  # by content


@pytest.mark.parametrize("change", ["weight", "buffer", "pixel", "layer", "pool"])
def test_any_change_misses_the_cache(images, count_computes, change):
    model = _small()
    base = _extract(model, images, "conv3")
    assert len(count_computes) == 1
    layer, pool = "conv3", True
    if change == "weight":
        with torch.no_grad():
            model.fc1[1].weight[0, 0] += 1e-3  # a weight after conv3: the features cannot tell
    elif change == "buffer":
        with torch.no_grad():
            model.conv3[1].running_mean[0] -= 5.0  # lifts channel 0 above the ReLU
    elif change == "pixel":
        images = images.clone()
        images[3, 0, 5, 7] += 0.25
    elif change == "layer":
        layer = "conv2"
    else:
        pool = False
    again = _extract(model, images, layer, pool=pool)
    assert len(count_computes) == 2, f"changing the {change} should miss the cache"
    if change == "weight":
        assert torch.equal(again, base)  # a fresh computation, same numbers
    elif change in ("buffer", "pixel"):
        assert not torch.equal(again, base)


@pytest.mark.parametrize("switch", ["TLH_NO_CACHE", "NBGRADER_EXECUTION", "argument"])
def test_the_cache_can_be_switched_off(images, count_computes, clean_env, monkeypatch, switch):
    kwargs = {}
    if switch == "argument":
        kwargs["cache"] = False
    else:
        monkeypatch.setenv(switch, "1")
        assert features.cache_dir() is None
    model = _small()
    a = _extract(model, images, "fc1", **kwargs)
    b = _extract(model, images, "fc1", **kwargs)
    assert len(count_computes) == 2 and torch.equal(a, b)
    assert not clean_env.exists() or not any(clean_env.iterdir()), "nothing may be written"


def test_a_corrupt_cache_file_is_recomputed(images, count_computes, clean_env):
    model = _small()
    first = _extract(model, images, "fc1")
    (path,) = clean_env.glob("*.pt")
    path.write_bytes(b"not a tensor")
    again = _extract(model, images, "fc1")
    assert len(count_computes) == 2 and torch.equal(again, first)
    assert torch.equal(torch.load(path, weights_only=True), first)  # rewritten whole
    assert not list(clean_env.glob("*.tmp"))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TLH_CACHE_DIR", str(tmp_path / "here"))
    assert features.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("TLH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert features.cache_dir() == tmp_path / ".cache" / "tlhelpers"


# ---------------------------------------------------------------- body / feature_model
def test_feature_model_shares_the_models_parameters(images):
    model = _small()
    extractor = features.feature_model(model, "fc1")
    with torch.no_grad():
        before = extractor(images)
        model.fc1[1].bias += 1.0  # change the model: the extractor sees it
        after = extractor(images)
    assert before.shape == (10, 128)
    assert not torch.equal(before, after)


def test_body_returns_the_layer_output_and_trains_the_model(images):
    model = _small()
    trunk = tlh.body(model, "conv2")
    out = trunk(images)["features"]
    assert out.shape == (10, 8, 7, 7)
    out.sum().backward()
    assert model.conv1[0].weight.grad is not None and model.conv3[0].weight.grad is None


def test_body_accepts_graph_node_names(images):
    model = _small()
    out = tlh.body(model, "pool")(images)["features"]
    assert out.shape == (10, 8, 2, 2)


# ---------------------------------------------------------------- several layers, pooling grids
def test_several_layers_come_from_one_pass_and_match_single_calls(mnist):
    model = tlh.SmallCNN(seed=0).eval()
    images = mnist[1].tensors[0][:40]
    calls = []
    model.conv1.register_forward_hook(lambda *args: calls.append(1))
    tlh.extract_features(model, images, "conv3", pool=2, cache=False, progress=False)
    one_layer = len(calls)
    both = tlh.extract_features(model, images, ["conv2", "conv3"], pool=2, cache=False, progress=False)
    assert list(both) == ["conv2", "conv3"]
    assert len(calls) == 2 * one_layer, "both layers from as many forward passes as one layer takes"
    for layer in ("conv2", "conv3"):
        alone = tlh.extract_features(model, images, layer, pool=2, cache=False, progress=False)
        torch.testing.assert_close(both[layer], alone)


def test_pool_grid_averages_each_cell_of_the_map(mnist):
    model = tlh.SmallCNN(seed=0).eval()
    images = mnist[1].tensors[0][:8]
    maps = tlh.extract_features(model, images, "conv2", pool=False, cache=False, progress=False)
    grid = tlh.extract_features(model, images, "conv2", pool=7, cache=False, progress=False)
    flat = tlh.extract_features(model, images, "conv2", pool=True, cache=False, progress=False)
    maps = maps.view(len(images), 64, 7, 7)   # conv2 of a 28 px digit: 64 channels at 7 x 7
    torch.testing.assert_close(grid, maps.flatten(1))
    torch.testing.assert_close(flat, maps.mean(dim=(2, 3)))


def test_several_layers_are_cached_as_one_entry(mnist, clean_env):
    model = tlh.SmallCNN(seed=1).eval()
    images = mnist[1].tensors[0][:16]
    first = tlh.extract_features(model, images, ["conv1", "fc1"], progress=False)
    assert len(list(clean_env.glob("*.pt"))) == 1
    again = tlh.extract_features(model, images, ["conv1", "fc1"], progress=False)
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)


@pytest.mark.parametrize("layer, pool, error", [([], True, TypeError), (["conv1", "conv1"], True, TypeError),
                                                ("conv1", 0, ValueError), ("conv1", "max", ValueError),
                                                (["conv1", "nope"], True, ValueError)])
def test_bad_layer_lists_and_pools_are_refused(mnist, layer, pool, error):
    with pytest.raises(error):
        tlh.extract_features(tlh.SmallCNN(seed=0), mnist[1].tensors[0][:4], layer, pool=pool, progress=False)
