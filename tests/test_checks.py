"""checks.forbid: a delegating answer fails under every alias, and the helper comes back."""
from __future__ import annotations

import pytest
import torch

import tlhelpers as tlh
from tlhelpers.checks import forbid
from tlhelpers.surgery import count_parameters as aliased


def test_forbid_catches_every_alias_and_restores_the_helper():
    model = torch.nn.Linear(3, 2)
    before = tlh.count_parameters(model)
    with forbid(tlh.count_parameters, lesson="count_parameters"):
        for call in (tlh.count_parameters, aliased, getattr(tlh, "count_" + "parameters")):
            with pytest.raises(AssertionError, match="write count_parameters yourself.*count_parameters"):
                call(model)
        assert sum(p.numel() for p in model.parameters()) == before, "plain PyTorch still works inside"
    assert tlh.count_parameters(model) == before == aliased(model), "the helper works again after the block"


def test_forbid_restores_the_helper_after_an_error():
    with pytest.raises(RuntimeError), forbid(tlh.count_parameters):
        raise RuntimeError("the student's code crashed")
    assert tlh.count_parameters(torch.nn.Linear(3, 2)) == 8


def test_forbid_refuses_what_it_cannot_guard():
    with pytest.raises(TypeError, match="plain functions"), forbid(len):
        pass


def test_forbid_is_a_student_package_name_loaded_on_first_use():
    import subprocess
    import sys

    code = ("import sys, tlhelpers as tlh; assert 'tlhelpers.checks' not in sys.modules; "
            "from tlhelpers.checks import forbid; assert tlh.forbid is forbid; "
            "assert not [m for m in sys.modules if m.startswith('tlhelpers.instructor')]")
    subprocess.run([sys.executable, "-c", code], check=True)
