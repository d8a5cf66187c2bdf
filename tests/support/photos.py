"""Real sample photos (shipped with matplotlib and scikit-learn) as tensors for the tests."""
from __future__ import annotations

import torch


def load_photo(name: str) -> torch.Tensor:
    """Return a real sample photo as a (1, 3, side, side) tensor in [0, 1], centre-cropped square.

    ``name``: ``"grace_hopper"`` (matplotlib) or ``"china"`` / ``"flower"`` (scikit-learn).
    """
    import numpy as np

    if name == "grace_hopper":
        from matplotlib import cbook

        import matplotlib.image

        image = matplotlib.image.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top:top + side, left:left + side]
