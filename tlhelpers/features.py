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
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .arguments import whole
from .env import PROGRESS_DELAY_S
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


def body(model: nn.Module, layer: str | Sequence[str]) -> nn.Module:
    """Return a module that runs ``model`` up to ``layer`` and returns ``{"features": output}``.

    (torchvision's feature extractors always return a dict: index ``["features"]``.) With
    several layers it returns a dict {layer: output}, from one forward pass. The
    returned module shares ``model``'s parameters, so it can be trained (fine-tuned) as
    well as used as a fixed extractor.

    Raises:
        ValueError: for a layer name the model does not have, listing the valid ones.
    """
    # imported here: torchvision's import costs seconds (it loads torch._dynamo), and every
    # kernel that imports tlhelpers, graders' included, would pay it
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    layers = _layer_list(layer)
    valid = set(layer_names(model))
    nodes = None
    for name in layers:
        if name not in valid:
            nodes = nodes or get_graph_node_names(model, tracer_kwargs={"leaf_modules": _LEAF_MODULES})[1]
            if name not in nodes:
                raise ValueError(f"unknown layer {name!r}; valid layers: {layer_names(model, depth=2)}")
    return_nodes = {layers[0]: "features"} if isinstance(layer, str) else {name: name for name in layers}
    return create_feature_extractor(model, return_nodes=return_nodes, tracer_kwargs={"leaf_modules": _LEAF_MODULES})


def _layer_list(layer) -> list[str]:
    """Return ``layer`` as a list of names: one name, or a non-empty sequence of distinct names."""
    layers = [layer] if isinstance(layer, str) else list(layer) if isinstance(layer, (list, tuple)) else None
    if not layers or not all(isinstance(name, str) for name in layers) or len(set(layers)) != len(layers):
        raise TypeError(f"layer must be a layer name (str) or a list of distinct names, got {layer!r}")
    return layers


def _check_pool(pool) -> bool | int:
    if isinstance(pool, bool) or (isinstance(pool, int) and pool >= 1):
        return pool
    raise ValueError(f"pool must be True (global average), False (no pooling) or a grid size k >= 1 "
                     f"(average-pool to k x k), got {pool!r}")


def pool_features(output: torch.Tensor, pool: bool | int) -> torch.Tensor:
    """Return one flat vector per image: global average (True), a k x k average grid (k) or as is (False).

    A map smaller than k x k is spread over the grid (adaptive pooling repeats its cells).
    """
    if output.dim() == 4 and pool is not False:
        output = output.mean(dim=(2, 3)) if pool is True else F.adaptive_avg_pool2d(output, pool)
    return output.flatten(1)


class _Unwrap(nn.Module):
    def __init__(self, extractor: nn.Module, pool: bool | int, single: bool):
        super().__init__()
        self.extractor, self.pool, self.single = extractor, pool, single

    def forward(self, x: torch.Tensor):
        out = {name: pool_features(value, self.pool) for name, value in self.extractor(x).items()}
        return out["features"] if self.single else out


def feature_model(model: nn.Module, layer: str | Sequence[str], *, pool: bool | int = True) -> nn.Module:
    """Return a module mapping images to the flattened (pooled) output of ``layer`` (a dict for several)."""
    return _Unwrap(body(model, layer), _check_pool(pool), isinstance(layer, str))


def _content_key(model: nn.Module, images: torch.Tensor, layer, pool) -> str:
    digest = hashlib.sha256()
    for name, tensor in list(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str((tuple(images.shape), images.dtype)).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(f"{type(model).__qualname__}|{layer!r}|{pool!r}|{torch.__version__}".encode())
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
    for (batch,) in tqdm(loader, desc="features", disable=not progress, leave=False, delay=PROGRESS_DELAY_S):
        batch = batch.to(device)
        if batch.dim() == 4 and device.type != "mps":
            batch = batch.contiguous(memory_format=torch.channels_last)
        result = extractor(batch)
        out.append({k: v.float().cpu() for k, v in result.items()} if isinstance(result, dict)
                   else result.float().cpu())
    if isinstance(out[0], dict):
        return {k: torch.cat([o[k] for o in out]) for k in out[0]}
    return torch.cat(out)


def extract_features(model: nn.Module, images: torch.Tensor, layer: str | Sequence[str], *, pool: bool | int = True,
                     batch_size: int = 128, device: torch.device | str | None = None,
                     cache: bool = True, progress: bool = True) -> torch.Tensor | dict[str, torch.Tensor]:
    """Return the features of ``layer`` for every image, shape (n, d), on the CPU.

    Lesson: 03-feature-extraction builds this (exercise ``extract_features``: one layer,
    pooled, with a forward hook); the package adds a list of layers (ONE forward pass),
    other poolings, a device, an on-disk cache and a progress bar.

    Args:
        model: any model; it is not changed (its mode is restored).
        images: (n, c, h, w) tensor, already in the model's expected input format.
        layer: a layer name such as ``"blocks.8"`` (an unknown one lists the valid names),
            or a list of names.
        pool: ``True``: global-average-pool spatial maps to one vector per channel;
            ``k`` (an int): average-pool to a k x k grid, then flatten; ``False``: flatten as is.
        batch_size: images per forward pass.
        device: where to compute (default: the model's device).
        cache: read and write the on-disk cache (see :func:`cache_dir`).
        progress: show a tqdm progress bar once extraction has run for 2 s.
    """
    if not isinstance(images, torch.Tensor) or images.dim() < 2:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (n, c, h, w), got {got}")
    batch_size = whole("batch_size", batch_size, low=1)
    extractor = feature_model(model, layer, pool=pool)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)

    folder = cache_dir() if cache else None
    path = None
    if folder is not None:
        path = folder / f"{_content_key(model, images, layer, pool)}.pt"
        cached = _load_cached(path)  # a tensor, or a dict of tensors for several layers
        if cached is not None:
            return cached

    # Compute on a copy: the extractor shares the model's modules, and moving them to
    # ``device`` or to channels_last in place would change the caller's model (its device,
    # and the low bits of later outputs, so a cold-cache run would differ from a warm one).
    feats = _compute(copy.deepcopy(extractor), images, batch_size, device, progress)
    if path is not None:
        _atomic_save(feats, path)
    return feats


def _load_cached(path: Path):
    """Return what the cache file ``path`` holds, or None when it is missing, torn or foreign (then removed)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        path.unlink(missing_ok=True)  # recompute it
        return None


def _atomic_save(tensor, path: Path) -> None:
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
