"""Model surgery: freeze and unfreeze by name, replace the head, count parameters, LR groups.

Every function takes an ``nn.Module`` and returns it, so calls chain:
``tlh.freeze(tlh.replace_head(model, 10), until="blocks.8")``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from torch import nn

from .arguments import whole
from .batchnorm import set_bn_frozen


def layer_names(model: nn.Module, *, depth: int | None = None) -> list[str]:
    """Return the names of ``model``'s submodules (up to ``depth`` dots deep), in order."""
    names = [n for n, _ in model.named_modules() if n]
    if depth is not None:
        names = [n for n in names if n.count(".") < depth]
    return names


def _check_names(model: nn.Module, names: Iterable[str]) -> None:
    valid = set(layer_names(model)) | {n for n, _ in model.named_parameters()}
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; valid names, up to one dot deep: "
                         f"{layer_names(model, depth=2)} (the model itself, named '', is not a layer)")


def _matches(param_name: str, prefixes: Sequence[str]) -> bool:
    return any(param_name == p or param_name.startswith(p + ".") for p in prefixes)


def _selected(model: nn.Module, *, until: str | None, names: Sequence[str] | None) -> tuple[set[str], set[str]]:
    """Return the (parameter names, module names) chosen by ``until`` or ``names`` (or all).

    ``until`` picks every module that comes before that layer in registration order, so a
    layer without parameters (a pooling layer, a ReLU) is a valid place to stop.
    """
    if until is not None and names is not None:
        raise ValueError("give either until= or names=, not both")
    modules = layer_names(model)
    if until is not None:
        _check_names(model, [until])
        if until not in modules:
            raise ValueError(f"until= takes a layer (module) name, got the parameter {until!r}; "
                             f"its layer is {until.rpartition('.')[0]!r}")
        ancestors = {n for n in modules if until.startswith(n + ".")}   # containers of until
        chosen = set(modules[:modules.index(until)]) - ancestors
        params = {n for n, _ in model.named_parameters() if n.rpartition(".")[0] in chosen | {""}}
        return params, chosen
    if names is not None:
        if isinstance(names, str):
            names = [names]
        _check_names(model, names)
        return ({n for n, _ in model.named_parameters() if _matches(n, names)},
                {n for n in modules if _matches(n, names)})
    return {n for n, _ in model.named_parameters()}, set(modules)


def freeze(model: nn.Module, *, until: str | None = None, names: Sequence[str] | str | None = None,
           train_bn: bool = False) -> nn.Module:
    """Freeze parameters so an optimizer step cannot change them.

    Lesson: 04-freezing-layers builds this (exercise ``freeze``, with ``until`` only).

    Args:
        until: freeze every parameter registered *before* this layer (e.g. ``"blocks.8"``
            freezes the stem and blocks 0-7); the layer itself stays trainable.
        names: freeze these layers (names or prefixes of parameter names) instead.
            With neither, freeze everything.
        train_bn: keep updating the running statistics of frozen BatchNorm layers in
            train mode (their weights stay frozen; fastai's ``train_bn=True`` goes further
            and also trains their weights). Off by default: frozen means frozen,
            statistics included, so a frozen feature extractor gives the same features in
            train and eval mode.

    Raises:
        ValueError: for an unknown layer name, listing the valid ones.
    """
    chosen, modules = _selected(model, until=until, names=names)
    for name, param in model.named_parameters():
        if name in chosen:
            param.requires_grad_(False)
    if not train_bn:
        set_bn_frozen(model, modules, freeze=True)
    return model


def unfreeze(model: nn.Module, *, names: Sequence[str] | str | None = None) -> nn.Module:
    """Make parameters trainable again (all of them, or those under ``names``).

    BatchNorm layers that train again also update their running statistics again; layers
    that stay frozen keep whatever ``freeze`` set for them.
    """
    chosen, modules = _selected(model, until=None, names=names)
    for name, param in model.named_parameters():
        if name in chosen:
            param.requires_grad_(True)
    set_bn_frozen(model, modules, freeze=False)
    return model


def count_parameters(model: nn.Module, *, trainable: bool = False) -> int:
    """Return the number of parameters (only those with ``requires_grad`` if ``trainable``).

    Lesson: 02-pretrained-models builds this (exercise ``count_parameters``).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Return the parameters an optimizer should hold: those that require gradients."""
    return [p for p in model.parameters() if p.requires_grad]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the last ``nn.Linear`` of ``model`` with a fresh one of ``num_classes`` outputs.

    Lesson: 02-pretrained-models builds this (exercise ``replace_head``).

    Raises:
        ValueError: if ``num_classes`` is not a positive int, or the model has no Linear
            layer inside it (a bare ``nn.Linear`` is not replaced in place: build a new one).
    """
    num_classes = whole("num_classes", num_classes, low=1)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer inside it to replace"
                         + (" (it IS one: create nn.Linear(in_features, num_classes) instead)"
                            if isinstance(model, nn.Linear) else ""))
    name = linears[-1]
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    setattr(parent, attr, new.to(old.weight.device))
    return model


def param_groups(model: nn.Module, groups: Sequence[Sequence[str] | str], *, lr: float,
                 lr_mult: float = 10.0) -> list[dict]:
    """Return optimizer parameter groups with discriminative learning rates.

    Lesson: 05-fine-tuning builds this (exercise ``param_groups``).

    Group ``i`` of ``n`` (earliest first) gets ``lr / lr_mult ** (n - 1 - i)``: the last
    group (the head) trains at ``lr``, earlier, more generic layers more gently.
    Only trainable parameters are included; each parameter lands in one group.

    Args:
        groups: for each group, a layer name or list of names/prefixes.
        lr: the learning rate of the last group.
        lr_mult: the factor between neighbouring groups.

    Raises:
        ValueError: for unknown names, or a trainable parameter left in no group.
    """
    if lr <= 0 or lr_mult < 1:
        raise ValueError(f"need lr > 0 and lr_mult >= 1, got lr={lr!r}, lr_mult={lr_mult!r}")
    groups = [[g] if isinstance(g, str) else list(g) for g in groups]
    _check_names(model, [n for g in groups for n in g])
    taken: set[str] = set()
    result = []
    for i, prefixes in enumerate(groups):
        params = [p for n, p in model.named_parameters()
                  if p.requires_grad and n not in taken and _matches(n, prefixes)]
        taken |= {n for n, p in model.named_parameters() if p.requires_grad and _matches(n, prefixes)}
        result.append({"params": params, "lr": lr / lr_mult ** (len(groups) - 1 - i)})
    left = [n for n, p in model.named_parameters() if p.requires_grad and n not in taken]
    if left:
        raise ValueError(f"trainable parameters in no group: {left[:5]}{' ...' if len(left) > 5 else ''}")
    return result
