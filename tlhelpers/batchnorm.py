"""BatchNorm, the layer transfer learning trips over: fixed statistics when frozen, re-estimated after training.

A BatchNorm layer carries state that no optimizer touches (its running mean and
variance), so freezing its weights does not freeze it, and a few hundred steps of
few-shot training leave its statistics behind its weights. Notebook 04 teaches both
(its BatchNorm section; later notebooks point back to it); both live here so the rest of
the package has one place that knows about BatchNorm.
"""
from __future__ import annotations

import torch
from torch import nn

from .arguments import whole

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def frozen_bn_pre_hook(module: nn.Module, args):
    """Forward pre-hook of a frozen BatchNorm: normalise with the stored running statistics.

    Runs before every forward, so the layer never updates its statistics, even after
    ``model.train()`` flips it back. Notebook 04 registers it by hand (``keep_eval``); a
    hook is recognised by identity, so a lesson that freezes with this very function
    agrees with :func:`is_frozen_bn` and :func:`recalibrate_bn`.
    """
    module.training = False


def is_frozen_bn(module: nn.Module) -> bool:
    """Return whether ``module`` is a BatchNorm layer whose running statistics :func:`set_bn_frozen` fixed."""
    return frozen_bn_pre_hook in module._forward_pre_hooks.values()


def _hook(module: nn.Module) -> None:
    module.register_forward_pre_hook(frozen_bn_pre_hook)
    module.eval()


def _unhook(module: nn.Module, training: bool) -> None:
    for key, hook in list(module._forward_pre_hooks.items()):
        if hook is frozen_bn_pre_hook:
            del module._forward_pre_hooks[key]
    module.train(training)


def set_bn_frozen(model: nn.Module, chosen_modules: set[str], *, freeze: bool) -> None:
    """Fix (``freeze``) or release the running statistics of the chosen BatchNorm layers.

    A BatchNorm layer with weights follows its weights: its statistics are fixed only once
    all its own parameters are frozen, and released as soon as one trains again. One
    without weights (``affine=False``) follows the layers chosen by name.
    """
    # The hook is found by identity rather than kept as a handle, so a deep-copied or
    # pickled model unfreezes its own BatchNorm layers and never the original's.
    for name, module in model.named_modules():
        if not isinstance(module, BN_TYPES):
            continue
        own = list(module.parameters())
        if own:
            fixed = not any(p.requires_grad for p in own)
        elif name in chosen_modules:
            fixed = freeze
        else:
            continue
        if freeze and fixed and not is_frozen_bn(module):
            _hook(module)
        elif not freeze and not fixed and is_frozen_bn(module):
            _unhook(module, model.training)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> nn.Module:
    """Re-estimate the running statistics of ``model``'s unfrozen BatchNorm layers; return it in eval mode.

    After a few hundred optimizer steps (few-shot training) the running averages lag
    behind the weights and eval-mode accuracy can collapse. One pass over ``images`` in
    train mode with ``momentum=None`` (a plain average over the batches) replaces them;
    with at most ``batch_size`` images that is exactly those images' statistics. Layers
    frozen by :func:`freeze` keep theirs. Notebook 04 teaches why (its BatchNorm section).

    Raises:
        ValueError: if ``images`` is not a non-empty batch tensor.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch tensor (n, ...), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    batch_size = whole("batch_size", batch_size, low=1)
    layers = [m for m in model.modules() if isinstance(m, BN_TYPES) and not is_frozen_bn(m)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    device = next(model.parameters()).device
    model.train()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size].to(device))
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
    return model.eval()
