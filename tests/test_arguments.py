"""arguments: one rule for counts and numbers across the package (NumPy ints yes, bools never)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tlhelpers as tlh
from tlhelpers.arguments import number, whole


def test_whole_accepts_python_and_numpy_ints_and_names_the_rule():
    assert whole("k", 3, low=1) == 3 and type(whole("k", np.int64(3), low=1)) is int
    assert whole("k", None, none_ok=True) is None
    for bad, message in [(True, "k must be a positive int, got True"), (0, "k must be a positive int, got 0"),
                         (2.0, "k must be a positive int, got 2.0"), ("3", "k must be a positive int, got '3'")]:
        with pytest.raises(ValueError, match=message):
            whole("k", bad, low=1)
    with pytest.raises(ValueError, match="folds must be an int >= 2, got 1"):
        whole("folds", 1, low=2)
    with pytest.raises(ValueError, match="must be None or a non-negative int"):
        whole("seed", -1, none_ok=True)


def test_number_accepts_reals_refuses_bools_nan_and_out_of_range():
    assert number("x", np.float32(0.5), low=0, high=1) == 0.5 and number("x", 2) == 2.0
    with pytest.raises(TypeError, match="x must be a number, got bool"):
        number("x", True)
    with pytest.raises(TypeError, match="got Tensor"):
        number("x", torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        number("x", 1.5, low=0, high=1)
    with pytest.raises(ValueError, match="positive finite number"):
        number("gamma", 0.0, positive=True)
    with pytest.raises(ValueError, match="finite"):
        number("x", float("nan"))


@pytest.mark.parametrize("call", [
    lambda v: tlh.few_shot(tlh.mnist5k()[1], v, seed=0),
    lambda v: tlh.render_digits(v),
    lambda v: tlh.replace_head(tlh.SmallCNN(seed=0), v),
    lambda v: tlh.recalibrate_bn(tlh.SmallCNN(seed=0), torch.rand(4, 1, 28, 28), batch_size=v),
])
def test_helpers_share_one_rule_for_counts(call):
    """A NumPy count works everywhere, and True is refused everywhere (once accepted by some helpers)."""
    call(np.int64(2))
    with pytest.raises(ValueError, match="must be a positive int, got True"):
        call(True)
