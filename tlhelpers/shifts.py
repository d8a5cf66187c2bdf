"""Controlled, deterministic domain shift for digit images, and printed digits rendered from fonts.

Every function takes and returns float tensors of shape (n, c, h, w) with values in
[0, 1], never changes its input, and is deterministic: the same input and seed give the
same output. Together they give a similarity dial for experiments on "how far is the
target domain from the source domain":

- :func:`rotate`, :func:`invert`, :func:`add_noise`: the same digits, changed P(X);
- :func:`photo_background`: digits blended over photo patches, as in MNIST-M
  (Ganin et al., 2016), from the two photos that ship with scikit-learn;
- :func:`render_digits`: printed digits rendered from the fonts that ship with
  matplotlib, for simulation-to-real experiments (train on rendered, test on handwritten);
- :func:`fit_to_frame`: put small digits (e.g. 8x8 UCI) in a 28x28 MNIST-style frame;
- :func:`shift`: one dial, ``strength`` from 0 (no change) to 1 (the strongest shift).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .arguments import number, whole

# Font files (stems) in matplotlib's mpl-data/fonts/ttf that draw ordinary lining digits.
# Left out on purpose: the *Display faces and STIXNonUni* (no digit glyphs), STIXSiz*,
# cmex10 and cmsy10 (symbols only) and cmmi10 (old-style digits of varying height).
FONTS = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
    "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique", "DejaVuSansMono-BoldOblique",
    "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
    "cmr10", "cmb10", "cmss10", "cmti10", "cmtt10",
)
SHIFT_KINDS = ("rotate", "noise", "photo")

# MNIST geometry: each digit was scaled to fit a 20x20 box, then placed in a 28x28 frame
# with its centre of mass at the centre. Rendered digits follow the same recipe.
_FRAME, _BOX = 28.0, 20.0
_BANK_EXTENT = 40.0   # the glyph bank covers 40 "MNIST pixels", so rotation never clips
_OVERSAMPLE = 2       # render at 2x and average down: anti-aliased edges like MNIST's
_CHUNK = 2048         # images drawn per batch in render_digits


def _check_images(images: torch.Tensor, *, channels: tuple[int, ...] = (1, 3)) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (n, c, h, w), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] not in channels:
        raise ValueError(f"images must have shape (n, c, h, w) with c in {channels}, "
                         f"got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a float tensor with values in [0, 1], got dtype {images.dtype}")
    if images.numel() and (images.min() < -1e-6 or images.max() > 1 + 1e-6):
        raise ValueError(f"images must have values in [0, 1], got min {images.min().item():.3g} "
                         f"and max {images.max().item():.3g} (divide 0..255 pixels by 255)")


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Return the images rotated by ``degrees`` counter-clockwise about their centre.

    Bilinear interpolation; corners that come from outside the image are black (0).
    """
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import rotate as tv_rotate

    _check_images(images)
    degrees = number("degrees", degrees)
    if degrees % 360 == 0:
        return images.clone()
    out = tv_rotate(images, degrees, interpolation=InterpolationMode.BILINEAR)
    return out.clamp_(0.0, 1.0)


def invert(images: torch.Tensor) -> torch.Tensor:
    """Return ``1 - images``: dark digits on a white background."""
    _check_images(images)
    return 1.0 - images


def add_noise(images: torch.Tensor, std: float, *, seed: int = 0) -> torch.Tensor:
    """Return the images plus Gaussian noise of standard deviation ``std``, clipped to [0, 1]."""
    _check_images(images)
    std = number("std", std, low=0.0)
    generator = torch.Generator().manual_seed(whole("seed", seed))
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + std * noise.to(images.device)).clamp_(0.0, 1.0)


@lru_cache(maxsize=1)
def _photos() -> torch.Tensor:
    from sklearn.datasets import load_sample_images

    photos = np.stack(load_sample_images().images).astype(np.float32) / 255.0  # (2, 427, 640, 3)
    return torch.from_numpy(photos).permute(0, 3, 1, 2).contiguous()          # (2, 3, 427, 640)


def photo_background(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Return colour digits blended over random photo patches, as in MNIST-M.

    Each digit gets an (h, w) patch cropped at a random place from one of the two photos
    of ``sklearn.datasets.load_sample_images`` (china.jpg, flower.jpg), and the pixel
    becomes ``|patch - digit|``: MNIST-M's blend, which keeps the digit visible on any
    background because it flips the patch's colours where the stroke is.

    Args:
        images: (n, 1 or 3, h, w) in [0, 1]; one channel is used for all three colours.
        seed: picks the photos and the crop positions.

    Returns:
        (n, 3, h, w) float tensor in [0, 1].
    """
    _check_images(images)
    seed = whole("seed", seed)
    photos = _photos()
    n, _, h, w = images.shape
    _, _, ph, pw = photos.shape
    if h > ph or w > pw:
        raise ValueError(f"images of {h}x{w} are larger than the photos ({ph}x{pw})")
    rng = np.random.default_rng(seed)
    which = torch.from_numpy(rng.integers(0, len(photos), size=n))
    top = torch.from_numpy(rng.integers(0, ph - h + 1, size=n))
    left = torch.from_numpy(rng.integers(0, pw - w + 1, size=n))
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]     # (n, 1, h, 1)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :]    # (n, 1, 1, w)
    patches = photos[which[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    digits = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    return (patches.to(images.device, images.dtype) - digits).abs_().clamp_(0.0, 1.0)


def fit_to_frame(images: torch.Tensor, *, size: int = 28, box: int = 20) -> torch.Tensor:
    """Return the images resized to ``box`` x ``box`` and centred in a ``size`` x ``size`` black frame.

    That is how MNIST digits were framed (a 20x20 box in 28x28), so small digits such
    as the 8x8 UCI ones can be compared with MNIST pixel for pixel. Bilinear, so values
    stay in [0, 1]; non-square images are stretched to the square box.
    """
    _check_images(images)
    if not isinstance(size, int) or not isinstance(box, int) or not 1 <= box <= size:
        raise ValueError(f"need ints with 1 <= box <= size, got box={box!r}, size={size!r}")
    x = F.interpolate(images, size=(box, box), mode="bilinear", align_corners=False,
                      antialias=max(images.shape[-2:]) > box)
    before = (size - box) // 2
    return F.pad(x, (before, size - box - before, before, size - box - before)).clamp_(0.0, 1.0)


def shift(images: torch.Tensor, kind: str, strength: float, *, seed: int = 0) -> torch.Tensor:
    """Return the images shifted by one dial: ``strength`` 0 changes nothing, 1 is the strongest.

    Kinds:
        ``"rotate"``: rotate by ``90 * strength`` degrees.
        ``"noise"``: add Gaussian noise with ``std = strength``.
        ``"photo"``: blend the grey digit (as 3 channels) with its MNIST-M version,
        ``(1 - strength) * digit + strength * photo_background(digit)``; always 3 channels,
        so a sweep over strengths gives tensors of one shape.

    Inversion has no dial on purpose: half-way between a digit and its negative is a
    flat grey image, which carries no digit at all; use :func:`invert`.
    """
    if kind not in SHIFT_KINDS:
        raise ValueError(f"unknown shift kind {kind!r}; valid kinds: {list(SHIFT_KINDS)}")
    strength = number("strength", strength, low=0.0, high=1.0)
    _check_images(images)
    if kind == "rotate":
        return rotate(images, 90.0 * strength)
    if kind == "noise":
        return add_noise(images, strength, seed=seed)
    grey = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    return ((1.0 - strength) * grey + strength * photo_background(images, seed=seed)).clamp_(0.0, 1.0)


def _font_file(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{name}.ttf"


def _glyph(name: str, char: str, em_px: int = 128) -> np.ndarray:
    """Return the anti-aliased bitmap of one character, cropped to its ink, values in [0, 1]."""
    from matplotlib.ft2font import FT2Font, LoadFlags

    font = FT2Font(str(_font_file(name)))
    font.set_size(em_px, 72)  # 72 dpi: em_px points = em_px pixels
    font.set_text(str(char), 0.0, flags=LoadFlags.NO_HINTING)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(img.max(1) > 0), np.flatnonzero(img.max(0) > 0)
    if not len(rows):
        raise RuntimeError(f"font {name!r} drew no ink for {char!r}")
    return img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


@lru_cache(maxsize=8)
def _glyph_bank(fonts: tuple[str, ...], canvas: int, chars: str = "0123456789") -> torch.Tensor:
    """Return (len(fonts), len(chars), 2, canvas, canvas): every character of every font, MNIST-normalised.

    The canvas spans ``_BANK_EXTENT`` MNIST pixels; each glyph's longer side spans
    ``_BOX`` of them (aspect kept) and its centre of mass sits at the canvas centre.
    Index 0 of the third axis is the glyph as drawn, index 1 the same glyph with its
    strokes thickened by a 3x3 grey-level dilation (about half a pixel per side at
    2x oversampling), because many fonts draw thinner strokes than MNIST's pens.
    """
    bank = torch.zeros(len(fonts), len(chars), canvas, canvas)
    box_px = canvas * _BOX / _BANK_EXTENT
    for i, name in enumerate(fonts):
        for d, char in enumerate(chars):
            g = torch.from_numpy(_glyph(name, char))
            scale = box_px / max(g.shape)
            hw = (max(1, round(g.shape[0] * scale)), max(1, round(g.shape[1] * scale)))
            g = F.interpolate(g[None, None], size=hw, mode="bilinear", align_corners=False,
                              antialias=True)[0, 0].clamp(0, 1)
            total = g.sum()
            cy = float((g.sum(1) * torch.arange(hw[0])).sum() / total) + 0.5
            cx = float((g.sum(0) * torch.arange(hw[1])).sum() / total) + 0.5
            top, left = round(canvas / 2 - cy), round(canvas / 2 - cx)
            bank[i, d, top:top + hw[0], left:left + hw[1]] = g
    thick = F.max_pool2d(bank.flatten(0, 1)[:, None], 3, stride=1, padding=1).view_as(bank)
    return torch.stack([bank, thick], dim=2)


def render_digits(per_class: int, *, size: int = 28, seed: int = 0,
                  fonts: Sequence[str] | None = None) -> TensorDataset:
    """Return printed digits 0-9 rendered from matplotlib's fonts, framed like MNIST.

    The same as ``render_glyphs("0123456789", ...)``; see :func:`render_glyphs`.
    """
    return render_glyphs("0123456789", per_class, size=size, seed=seed, fonts=fonts)


def render_glyphs(chars: str, per_class: int, *, size: int = 28, seed: int = 0,
                  fonts: Sequence[str] | None = None) -> TensorDataset:
    """Return printed characters (digits, letters, ...) rendered from matplotlib's fonts, framed like MNIST.

    Each image takes a random font from ``fonts`` and a small random scale (0.85-1.05),
    rotation (+-12 degrees), slant (shear +-0.2), offset (+-1 pixel) and, for half of
    them, thicker strokes. It is drawn at 2x resolution and averaged down, white on
    black, with the character in a 20/28 box and its centre of mass at the centre, as
    MNIST was made. Rendering 100 per class takes well under a second once the fonts are
    rasterised (the first call in a process).

    Args:
        chars: the classes, one character each, e.g. ``"ABCDEFGHIJ"``; label i is chars[i].
        per_class: images per character.
        size: output height and width in pixels.
        seed: fixes every random choice; the same seed gives the same images.
        fonts: font file stems to draw from (default: all of :data:`FONTS`).

    Returns:
        TensorDataset of images (len(chars) * per_class, 1, size, size) float32 in [0, 1]
        and labels int64, grouped by class (0, 0, ..., 1, 1, ...).
    """
    if not isinstance(chars, str) or not chars or len(set(chars)) != len(chars) or any(c.isspace() for c in chars):
        raise ValueError(f"chars must be a non-empty string of distinct visible characters, got {chars!r}")
    per_class = whole("per_class", per_class, low=1)
    size = whole("size", size, low=8)
    seed = whole("seed", seed)
    if fonts is None:
        fonts = FONTS
    if isinstance(fonts, str):
        fonts = [fonts]
    fonts = tuple(fonts)
    unknown = [f for f in fonts if f not in FONTS]
    if not fonts or unknown:
        raise ValueError(f"unknown font(s) {unknown or fonts}; valid fonts: {list(FONTS)}")

    per_class, size = int(per_class), int(size)
    out_px = _OVERSAMPLE * size
    canvas = round(out_px * _BANK_EXTENT / _FRAME)
    bank = _glyph_bank(fonts, canvas, chars)

    n = len(chars) * per_class
    labels = torch.arange(len(chars)).repeat_interleave(per_class)
    rng = np.random.default_rng(seed)
    font_idx = rng.integers(0, len(fonts), size=n)
    scale = rng.uniform(0.85, 1.05, size=n)
    angle = np.deg2rad(rng.uniform(-12.0, 12.0, size=n))
    shear = rng.uniform(-0.2, 0.2, size=n)
    offset = rng.uniform(-1.0, 1.0, size=(n, 2))       # in MNIST pixels
    thicken = rng.integers(0, 2, size=n)               # 1: the glyph with thickened strokes

    # Forward map from glyph coordinates q to frame coordinates p (MNIST pixels from the
    # centre, y down): p = A q + t, A = scale * rotation @ shear. affine_grid wants the
    # inverse, from output normalised coordinates to input normalised coordinates.
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)        # (n, 2, 2)
    shr = np.zeros((n, 2, 2))
    shr[:, 0, 0] = shr[:, 1, 1] = 1.0
    shr[:, 0, 1] = shear
    a_inv = np.linalg.inv(scale[:, None, None] * rot @ shr)
    half_out, half_in = _FRAME / 2, _BANK_EXTENT / 2
    theta = np.concatenate([a_inv * half_out / half_in,
                            -(a_inv @ offset[:, :, None]) / half_in], axis=2)       # (n, 2, 3)
    theta = torch.from_numpy(theta).float()

    font_idx, thicken = torch.from_numpy(font_idx), torch.from_numpy(thicken)
    images = torch.empty(n, 1, size, size)
    for start in range(0, n, _CHUNK):  # chunks bound the memory of the gathered glyphs
        part = slice(start, start + _CHUNK)
        glyphs = bank[font_idx[part], labels[part], thicken[part]][:, None]          # (k, 1, C, C)
        grid = F.affine_grid(theta[part], [len(glyphs), 1, out_px, out_px], align_corners=False)
        big = F.grid_sample(glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        images[part] = F.avg_pool2d(big, _OVERSAMPLE).clamp_(0.0, 1.0)
    return TensorDataset(images, labels)
