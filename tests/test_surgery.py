"""surgery: freeze/unfreeze checked against requires_grad set by hand and against optimizer steps
(weights and BatchNorm statistics), replace_head, count_parameters, param_groups."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import tlhelpers as tlh


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return tlh.SmallCNN(width=4)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (BatchNorm running statistics included), copied."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_steps(model: nn.Module, steps: int = 3) -> None:
    """A few SGD steps in train mode on random digits, over every parameter that is trainable."""
    generator = torch.Generator().manual_seed(1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    model.train()
    for _ in range(steps):
        x = torch.rand(8, 1, 28, 28, generator=generator)
        y = torch.randint(0, 10, (8,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def _moved(before: dict, model: nn.Module) -> set[str]:
    after = model.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def _requires_grad(model: nn.Module) -> dict[str, bool]:
    return {n: p.requires_grad for n, p in model.named_parameters()}


# ---------------------------------------------------------------- freeze: the flags
@pytest.mark.parametrize("names", [["conv1"], ["conv1", "conv2"], "fc1", ["conv3.0"], ["fc.bias"]])
def test_freeze_names_matches_setting_requires_grad_by_hand(names):
    model, reference = _model(), _model()
    prefixes = [names] if isinstance(names, str) else names
    for name, param in reference.named_parameters():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            param.requires_grad = False
    assert tlh.freeze(model, names=names) is model  # returns the model, so calls chain
    assert _requires_grad(model) == _requires_grad(reference)
    assert any(_requires_grad(model).values()) and not all(_requires_grad(model).values())


def test_freeze_everything_and_unfreeze_everything():
    model = tlh.freeze(_model())
    assert not any(_requires_grad(model).values())
    assert tlh.count_parameters(model, trainable=True) == 0
    assert all(_requires_grad(tlh.unfreeze(model)).values())


def test_freeze_until_freezes_exactly_the_parameters_before_the_layer():
    model = tlh.SmallCNN()
    tlh.freeze(model, until="conv3")
    assert {n for n, g in _requires_grad(model).items() if not g} == {
        n for n, _ in model.named_parameters() if n.startswith(("conv1.", "conv2."))}

    lite0 = tlh.EfficientNetLite0()
    tlh.freeze(lite0, until="blocks.8")
    expected = {n for n, _ in lite0.named_parameters()
                if n.startswith("stem.") or any(n.startswith(f"blocks.{i}.") for i in range(8))}
    frozen = {n for n, g in _requires_grad(lite0).items() if not g}
    assert frozen == expected
    assert "blocks.8.expand.0.weight" not in frozen and "blocks.1.depthwise.0.weight" in frozen


@pytest.mark.parametrize("call", [
    lambda m: tlh.freeze(m, names=["conv9"]),
    lambda m: tlh.freeze(m, until="layer4"),
    lambda m: tlh.unfreeze(m, names="fc2"),
    lambda m: tlh.param_groups(m, ["conv1", "head"], lr=1e-3),
])
def test_unknown_names_raise_listing_the_valid_names(call):
    with pytest.raises(ValueError) as err:
        call(_model())
    message = str(err.value)
    assert "unknown layer" in message
    for valid in tlh.SmallCNN.layer_names:
        assert repr(valid) in message


def test_the_model_itself_is_no_place_to_cut():
    """named_modules() lists the model as '': the error says why that name is refused."""
    with pytest.raises(ValueError, match="named '', is not a layer"):
        tlh.freeze(_model(), until="")


def test_freeze_rejects_until_and_names_together():
    with pytest.raises(ValueError, match="either"):
        tlh.freeze(_model(), until="conv2", names=["conv1"])


def test_freeze_until_a_layer_without_parameters_stops_there():
    model = tlh.freeze(_model(), until="conv1.2")  # the ReLU after conv1's conv and BatchNorm
    expected = {n for n, _ in model.named_parameters() if n.startswith(("conv1.0.", "conv1.1."))}
    assert expected and {n for n, g in _requires_grad(model).items() if not g} == expected
    before = _snapshot(model)
    _train_steps(model)
    assert not {"conv1.1.running_mean", "conv1.1.running_var"} & _moved(before, model)
    resnet = tlh.freeze(torchvision.models.resnet18(weights=None), until="avgpool")
    assert {n for n, p in resnet.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}


def test_freeze_until_a_parameter_name_says_to_name_the_layer():
    with pytest.raises(ValueError, match="conv2.0"):
        tlh.freeze(_model(), until="conv2.0.weight")


def test_batchnorm_without_weights_is_frozen_by_name_and_by_position():
    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, affine=False), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 26 * 26, 10))

    for model in (tlh.freeze(net(), until="3"), tlh.freeze(net(), names=["0", "1"])):
        before = _snapshot(model)
        _train_steps(model)
        assert not {"1.running_mean", "1.running_var", "0.weight"} & _moved(before, model)
        assert "4.weight" in _moved(before, model)
    model = tlh.unfreeze(tlh.freeze(net(), names=["1"]), names=["1"])
    before = _snapshot(model)
    _train_steps(model)
    assert "1.running_mean" in _moved(before, model), "unfreeze releases a BatchNorm without weights too"


def test_unfreeze_of_other_layers_keeps_train_bn_statistics_updating():
    model = tlh.freeze(_model(), names=["conv1", "conv2"], train_bn=True)
    tlh.unfreeze(model, names=["conv2"])
    before = _snapshot(model)
    _train_steps(model)
    moved = _moved(before, model)
    assert "conv1.1.running_mean" in moved, "conv1 was frozen with train_bn=True: its statistics keep updating"
    assert "conv1.0.weight" not in moved and "conv2.0.weight" in moved


# ---------------------------------------------------------------- freeze: behaviour under training
def test_frozen_weights_and_batchnorm_statistics_do_not_move_in_train_mode():
    model = tlh.freeze(_model(), names=["conv1", "conv2"])
    before = _snapshot(model)
    _train_steps(model)
    moved = _moved(before, model)
    frozen_side = {k for k in before if k.startswith(("conv1.", "conv2."))}
    assert frozen_side, "the check needs something frozen"
    assert not moved & frozen_side, f"frozen tensors changed: {sorted(moved & frozen_side)}"
    # ... while the trainable side, BatchNorm statistics included, did move
    assert {"conv3.0.weight", "conv3.1.running_mean", "conv3.1.running_var", "fc.weight", "fc1.1.weight"} <= moved
    assert model.conv1[1].training is False  # a frozen BN stays in eval mode after model.train()


def test_frozen_batchnorm_normalises_with_running_statistics():
    """Frozen means the same features in train and eval mode."""
    model = tlh.freeze(_model(), names=["conv1"])
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        train_out = model.train().conv1(x)
        eval_out = model.eval().conv1(x)
    torch.testing.assert_close(train_out, eval_out)


def test_freeze_with_train_bn_keeps_updating_batchnorm_statistics():
    model = tlh.freeze(_model(), names=["conv1"], train_bn=True)
    before = _snapshot(model)
    _train_steps(model)
    moved = _moved(before, model)
    assert "conv1.1.running_mean" in moved  # statistics follow the data (fastai's choice)
    assert not {"conv1.0.weight", "conv1.1.weight", "conv1.1.bias"} & moved  # weights do not


def test_unfreeze_restores_training_of_weights_and_batchnorm_statistics():
    model = tlh.unfreeze(tlh.freeze(_model(), names=["conv1", "conv2"]))
    before = _snapshot(model)
    _train_steps(model)
    moved = _moved(before, model)
    for name in ("conv1.0.weight", "conv1.1.running_mean", "conv1.1.running_var", "conv2.1.running_mean"):
        assert name in moved, f"{name} did not train after unfreeze"


def test_unfreeze_some_names_only():
    model = tlh.unfreeze(tlh.freeze(_model()), names=["fc"])
    assert {n for n, g in _requires_grad(model).items() if g} == {"fc.weight", "fc.bias"}
    before = _snapshot(model)
    _train_steps(model)
    assert _moved(before, model) == {"fc.weight", "fc.bias"}


def test_a_deep_copied_frozen_model_unfreezes_independently():
    original = tlh.freeze(_model(), names=["conv1"])
    twin = tlh.unfreeze(copy.deepcopy(original))
    assert not original.conv1[0].weight.requires_grad  # the original is still frozen
    before_original, before_twin = _snapshot(original), _snapshot(twin)
    _train_steps(original)
    _train_steps(twin)
    assert "conv1.1.running_mean" not in _moved(before_original, original)
    assert "conv1.1.running_mean" in _moved(before_twin, twin)


def test_freezing_a_copy_leaves_the_original_trainable():
    original = _model()
    frozen = tlh.freeze(copy.deepcopy(original))
    assert all(_requires_grad(original).values()) and not any(_requires_grad(frozen).values())
    before = _snapshot(original)
    _train_steps(original)
    assert "conv1.1.running_mean" in _moved(before, original)


# ---------------------------------------------------------------- replace_head
@pytest.mark.parametrize("make, x_shape, head", [
    (lambda: tlh.EfficientNetLite0(), (2, 3, 32, 32), "fc"),
    (lambda: tlh.SmallCNN(width=4), (2, 1, 28, 28), "fc"),
    (lambda: torchvision.models.resnet18(weights=None), (2, 3, 32, 32), "fc"),
])
def test_replace_head(make, x_shape, head):
    torch.manual_seed(0)
    model = make()
    body_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    old = model.get_submodule(head)
    tlh.freeze(model)
    assert tlh.replace_head(model, 7) is model
    new = model.get_submodule(head)
    assert new is not old and isinstance(new, nn.Linear)
    assert (new.in_features, new.out_features) == (old.in_features, 7)
    assert new.weight.requires_grad  # the new head trains even in a frozen model
    assert tlh.count_parameters(model, trainable=True) == old.in_features * 7 + 7
    with torch.no_grad():
        assert model.eval()(torch.rand(x_shape)).shape == (x_shape[0], 7)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in body_before.items())  # the body is untouched


@pytest.mark.parametrize("num_classes", [0, -2, 2.0, True])
def test_replace_head_rejects_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        tlh.replace_head(_model(), num_classes)


def test_replace_head_needs_a_linear_layer():
    with pytest.raises(ValueError, match="no nn.Linear"):
        tlh.replace_head(nn.Sequential(nn.Conv2d(1, 2, 3)), 3)


def test_replace_head_on_a_bare_linear_says_to_build_a_new_one():
    """A model that IS a Linear has no parent to swap it in: a ValueError that says what to do."""
    with pytest.raises(ValueError, match="it IS one"):
        tlh.replace_head(nn.Linear(4, 2), 3)


# ---------------------------------------------------------------- counting
def test_count_parameters_and_trainable_parameters_match_a_manual_sum():
    model = tlh.freeze(tlh.EfficientNetLite0(), until="blocks.12")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < total
    assert tlh.count_parameters(model) == total
    assert tlh.count_parameters(model, trainable=True) == trainable
    ids = [id(p) for p in tlh.trainable_parameters(model)]
    assert ids == [id(p) for p in model.parameters() if p.requires_grad]


def test_layer_names():
    model = _model()
    assert tlh.layer_names(model) == [n for n, _ in model.named_modules() if n]
    assert tlh.layer_names(model, depth=1) == ["conv1", "conv2", "conv3", "pool", "fc1", "fc"]
    assert "conv1.0" in tlh.layer_names(model, depth=2) and "conv1" in tlh.layer_names(model, depth=2)


# ---------------------------------------------------------------- param_groups
def test_param_groups_learning_rates_and_partition():
    model = _model()
    groups = tlh.param_groups(model, [["conv1", "conv2"], "conv3", ["fc1", "fc"]], lr=1e-2, lr_mult=4.0)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 / 16, 1e-2 / 4, 1e-2])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))  # disjoint
    assert set(ids) == {id(p) for p in model.parameters()}  # complete
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.conv3.parameters()}
    optimizer = torch.optim.SGD(groups, lr=123.0)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-2 / 16, 1e-2 / 4, 1e-2])


def test_param_groups_overlapping_prefixes_take_each_parameter_once():
    model = _model()
    groups = tlh.param_groups(model, ["conv1.0", ["conv1", "conv2", "conv3", "fc1", "fc"]], lr=1e-3)
    first, second = ({id(p) for p in g["params"]} for g in groups)
    assert first == {id(model.conv1[0].weight)}
    assert not first & second
    assert len(first | second) == len(list(model.parameters()))


def test_param_groups_step_sizes_follow_the_learning_rates():
    """One SGD step moves each group's weights by lr * grad: check it numerically."""
    model = _model()
    groups = tlh.param_groups(model, [["conv1", "conv2", "conv3", "fc1"], "fc"], lr=1e-1, lr_mult=10)
    optimizer = torch.optim.SGD(groups)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    model.eval()  # no BN statistics to change; only the step
    nn.functional.cross_entropy(model(x), y).backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    optimizer.step()
    params = dict(model.named_parameters())
    torch.testing.assert_close(params["fc.weight"], before["fc.weight"] - 1e-1 * grads["fc.weight"])
    torch.testing.assert_close(params["conv3.0.weight"], before["conv3.0.weight"] - 1e-2 * grads["conv3.0.weight"])


def test_param_groups_skip_frozen_parameters():
    model = tlh.freeze(_model(), names=["conv1", "conv2"])
    groups = tlh.param_groups(model, ["conv3", ["fc1", "fc"]], lr=1e-3)  # conv1/conv2 need no group
    ids = {id(p) for g in groups for p in g["params"]}
    assert ids == {id(p) for p in model.parameters() if p.requires_grad}


def test_param_groups_leftover_trainable_parameters_raise():
    with pytest.raises(ValueError, match="no group") as err:
        tlh.param_groups(_model(), [["conv1", "conv2"], "fc"], lr=1e-3)
    assert "conv3.0.weight" in str(err.value)


@pytest.mark.parametrize("lr, lr_mult", [(0.0, 10.0), (-1e-3, 10.0), (1e-3, 0.5)])
def test_param_groups_reject_bad_rates(lr, lr_mult):
    with pytest.raises(ValueError, match="lr"):
        tlh.param_groups(_model(), [tlh.SmallCNN.layer_names], lr=lr, lr_mult=lr_mult)
