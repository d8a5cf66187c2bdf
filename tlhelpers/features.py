"""Features from any named layer of a model, batched, in inference mode, cached by content.

The cache key is a hash of the model's weights and buffers, the input images, the layer
and the pooling: change any of them and the cache misses, so it can never serve stale
features. Set ``TLH_NO_CACHE=1`` to switch the cache off (autograding does: see
:func:`cache_dir`).
"""
from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from .backbones import Conv2dSame
from .surgery import layer_names

_LEAF_MODULES = [Conv2dSame]  # its padding arithmetic on shapes is not symbolically traceable
CACHE_ENV_VAR = "TLH_CACHE_DIR"
NO_CACHE_ENV_VAR = "TLH_NO_CACHE"


def cache_dir() -> Path | None:
    """Return the feature cache folder, or None when caching is off.

    Off when ``TLH_NO_CACHE`` is set, and while nbgrader autogrades a notebook
    (``NBGRADER_EXECUTION`` is set): a student's code could have written into the
    cache, and grading must never read what a student wrote.
    """
    if os.environ.get(NO_CACHE_ENV_VAR) or os.environ.get("NBGRADER_EXECUTION"):
        return None
    root = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "tlhelpers"
    return Path(root)


def body(model: nn.Module, layer: str) -> nn.Module:
    """Return a module that runs ``model`` up to ``layer`` and returns that layer's output.

    The returned module shares ``model``'s parameters, so it can be trained (fine-tuned)
    as well as used as a fixed extractor.

    Raises:
        ValueError: for a layer name the model does not have, listing the valid ones.
    """
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {type(layer).__name__}")
    valid = layer_names(model)
    if layer not in valid:
        nodes = get_graph_node_names(model, tracer_kwargs={"leaf_modules": _LEAF_MODULES})[1]
        if layer not in nodes:
            raise ValueError(f"unknown layer {layer!r}; valid layers: {layer_names(model, depth=2)}")
    return create_feature_extractor(model, return_nodes={layer: "features"},
                                    tracer_kwargs={"leaf_modules": _LEAF_MODULES})


class _Unwrap(nn.Module):
    def __init__(self, extractor: nn.Module, pool: bool):
        super().__init__()
        self.extractor, self.pool = extractor, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.extractor(x)["features"]
        if self.pool and out.dim() == 4:
            out = out.mean(dim=(2, 3))  # global average pool: (n, c, h, w) -> (n, c)
        return out.flatten(1)


def feature_model(model: nn.Module, layer: str, *, pool: bool = True) -> nn.Module:
    """Return a module mapping images to the flattened (pooled) output of ``layer``."""
    return _Unwrap(body(model, layer), pool)


def _content_key(model: nn.Module, images: torch.Tensor, layer: str, pool: bool) -> str:
    digest = hashlib.sha256()
    for name, tensor in list(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str((tuple(images.shape), images.dtype)).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(f"{type(model).__qualname__}|{layer}|{pool}|{torch.__version__}".encode())
    return digest.hexdigest()[:32]


@torch.inference_mode()
def _compute(extractor: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device,
             progress: bool) -> torch.Tensor:
    from tqdm.auto import tqdm

    extractor = extractor.to(device).eval()
    if device.type != "mps":
        extractor = extractor.to(memory_format=torch.channels_last)
    loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=False)
    out = []
    for (batch,) in tqdm(loader, desc="features", disable=not progress, leave=False):
        batch = batch.to(device)
        if batch.dim() == 4 and device.type != "mps":
            batch = batch.contiguous(memory_format=torch.channels_last)
        out.append(extractor(batch).float().cpu())
    return torch.cat(out)


def extract_features(model: nn.Module, images: torch.Tensor, *, layer: str, pool: bool = True,
                     batch_size: int = 128, device: torch.device | str | None = None,
                     cache: bool = True, progress: bool = True) -> torch.Tensor:
    """Return the features of ``layer`` for every image, shape (n, d), on the CPU.

    Args:
        model: any model; it is not changed (its mode is restored).
        images: (n, c, h, w) tensor, already in the model's expected input format.
        layer: a layer name such as ``"blocks.8"`` (an unknown one lists the valid names).
        pool: global-average-pool spatial maps to one vector per channel.
        batch_size: images per forward pass.
        device: where to compute (default: the model's device).
        cache: read and write the on-disk cache (see :func:`cache_dir`).
        progress: show a tqdm progress bar.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (n, c, h, w), got {got}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    extractor = feature_model(model, layer, pool=pool)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)

    folder = cache_dir() if cache else None
    path = None
    if folder is not None:
        path = folder / f"{_content_key(model, images, layer, pool)}.pt"
        if path.is_file():
            try:
                return torch.load(path, weights_only=True)
            except Exception:
                path.unlink(missing_ok=True)  # a torn or foreign file: recompute it

    # Compute on a copy: the extractor shares the model's modules, and moving them to
    # ``device`` or to channels_last in place would change the caller's model (its device,
    # and the low bits of later outputs, so a cold-cache run would differ from a warm one).
    feats = _compute(copy.deepcopy(extractor), images, batch_size, device, progress)
    if path is not None:
        _atomic_save(feats, path)
    return feats


def _atomic_save(tensor: torch.Tensor, path: Path) -> None:
    # Write to a temporary file and rename, so a crash never leaves a half-written
    # cache entry that a later run would trust.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(tensor, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
