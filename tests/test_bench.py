"""bench: the notebook timer runs notebooks cold, reports errors, and saves executed copies."""
from __future__ import annotations

import json

import nbformat
import pytest

from tlhelpers.instructor import bench


def _notebook(path, source: str):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_bench_notebooks_times_saves_and_reports(tmp_path, capsys):
    _notebook(tmp_path / "nb" / "a-ok" / "ok.ipynb",
              "import os\nprint('cache off:', os.environ.get('TLH_NO_CACHE'))")
    _notebook(tmp_path / "nb" / "b-bad" / "bad.ipynb", "raise ValueError('broken on purpose')")
    report = tmp_path / "report.json"
    code = bench.main(["--json", str(report), "notebooks", "--glob", str(tmp_path / "nb" / "*" / "*.ipynb"),
                       "--warmup", "0", "--save", str(tmp_path / "out")])
    assert code == 1, "a notebook that raises must fail the benchmark"
    rows = {r["notebook"].rsplit("/", 1)[-1]: r for r in json.loads(report.read_text())["rows"]}
    assert rows["ok.ipynb"]["status"] == "ok" and rows["ok.ipynb"]["seconds"] > 0
    assert len(rows["ok.ipynb"]["cells"]) == 1 and 0 < rows["ok.ipynb"]["slowest_cell"] < rows["ok.ipynb"]["seconds"]
    assert rows["bad.ipynb"]["status"].startswith("ERROR") and "broken on purpose" in rows["bad.ipynb"]["status"]
    saved = nbformat.read(str(tmp_path / "out" / "a-ok" / "ok.ipynb"), as_version=4)
    assert "cache off: 1" in saved.cells[0].outputs[0]["text"], "notebooks run with a cold (disabled) cache"
    assert "TOTAL" in capsys.readouterr().out


def test_bench_flags_a_slow_cell_and_runs_beside_busy_processes(tmp_path):
    """--busy starts burners for the run; a cell over --cell-budget is reported, and --strict fails on it."""
    _notebook(tmp_path / "nb" / "a-slow" / "slow.ipynb",
              "import os, time, torch, tlhelpers\ntime.sleep(0.6)\nprint(os.environ.get('TLH_THREADS'), torch.get_num_threads())")
    report = tmp_path / "report.json"
    argv = ["--json", str(report), "notebooks", "--glob", str(tmp_path / "nb" / "*" / "*.ipynb"), "--warmup", "0",
            "--cell-budget", "0.5", "--busy", "1", "--threads", "1", "--save", str(tmp_path / "out")]
    assert bench.main(argv) == 0, "a slow cell is a budget finding, not an error"
    row = json.loads(report.read_text())["rows"][0]
    assert row["status"].startswith("SLOW CELL") and row["slowest_cell"] >= 0.6
    saved = nbformat.read(str(tmp_path / "out" / "a-slow" / "slow.ipynb"), as_version=4)
    assert saved.cells[0].outputs[0]["text"].split() == ["1", "1"], "kernels get the requested thread count"
    assert bench.main([*argv, "--strict"]) == 1


@pytest.mark.parametrize("argv", [["notebooks", "--repeats", "0"], ["features", "--images", "0"],
                                  ["notebooks", "--busy", "-1"]])
def test_bench_rejects_nonsense_arguments(argv):
    with pytest.raises(SystemExit):
        bench.main(argv)
