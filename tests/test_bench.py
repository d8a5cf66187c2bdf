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
    assert rows["bad.ipynb"]["status"].startswith("ERROR") and "broken on purpose" in rows["bad.ipynb"]["status"]
    saved = nbformat.read(str(tmp_path / "out" / "a-ok" / "ok.ipynb"), as_version=4)
    assert "cache off: 1" in saved.cells[0].outputs[0]["text"], "notebooks run with a cold (disabled) cache"
    assert "TOTAL" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["notebooks", "--repeats", "0"], ["features", "--images", "0"]])
def test_bench_rejects_nonsense_arguments(argv):
    with pytest.raises(SystemExit):
        bench.main(argv)
