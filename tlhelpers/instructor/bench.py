"""Measure what the course's time budgets depend on: feature-extraction speed and notebook run time.

Run it from the repository root, alone on the machine (other work on the same cores makes
every number slower and noisier)::

    python -m tlhelpers.instructor.bench features            # EfficientNet-Lite0 images/s, with an ablation
    python -m tlhelpers.instructor.bench notebooks           # every solutions/*/*.ipynb, cold, vs the budgets
    python -m tlhelpers.instructor.bench notebooks --busy 2  # ... beside two CPU-bound processes (a shared machine)
    python -m tlhelpers.instructor.bench notebooks --threads 2   # ... with another torch thread count
    python -m tlhelpers.instructor.bench features --sizes 64 --images 128 --repeats 3   # a quick look
    python -m tlhelpers.instructor.bench grading --submissions 30 --jobs 2 --assignment 00-setup
        # sequential `nbgrader autograde` vs `python -m tlhelpers.instructor.grade --jobs 2`

Every timing is a median over ``--repeats`` runs after ``--warmup`` untimed runs.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

NOTEBOOK_BUDGET_S = 60.0       # one solution notebook, cold cache, 2 idle CPU cores
TOTAL_BUDGET_S = 6 * 60.0      # all of them together
CELL_BUDGET_S = 20.0           # one cell: under nbgrader's default 30 s limit with room to spare


# ---------------------------------------------------------------- shared
def _header(title: str) -> None:
    import torch

    import tlhelpers as tlh

    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"== {title} ==")
    print(f"device: {tlh.device()}   torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"load average (1, 5, 15 min): {load}  -- other work on these cores slows every number below")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _median_time(run: Callable[[], object], *, device, warmup: int, repeats: int) -> float:
    """Return the median wall time of ``run()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


# ---------------------------------------------------------------- features
def _feature_loop(module, images, *, batch_size: int, grad_mode: str, channels_last: bool, device):
    """Return a function that runs ``module`` over ``images`` in batches, the way a config says."""
    import torch

    module = copy.deepcopy(module).to(device).eval()
    images = images.to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    context = torch.inference_mode if grad_mode == "inference_mode" else torch.no_grad

    def run():
        with context():
            return [module(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return run


def bench_features(args) -> list[dict]:
    """Time EfficientNet-Lite0 feature extraction (pooled ``--layer`` output) in images/s."""
    import torch
    from torch import nn

    import tlhelpers as tlh
    from tlhelpers.features import feature_model  # a building block: not among the names notebooks use

    _header(f"EfficientNet-Lite0 feature extraction to {args.layer!r}, {args.images} images per run, "
            f"median of {args.repeats} after {args.warmup} warm-up")
    device = tlh.device()
    model = tlh.load_efficientnet_lite0().to(device)
    eager = copy.deepcopy(model)          # the "naive" model: the classifier with its fc removed
    if args.layer == "head":
        eager.fc = nn.Identity()
    else:                                 # any other layer: the traced extractor, run eagerly
        eager = feature_model(eager, args.layer)
    traced = feature_model(model, args.layer)
    b = args.batch
    # (name, module, batch, grad mode, channels_last): one change at a time from the naive loop
    configs = [
        ("naive: no_grad, batch 1, contiguous", eager, 1, "no_grad", False),
        (f"no_grad, batch {b}, contiguous", eager, b, "no_grad", False),
        (f"inference_mode, batch {b}, contiguous", eager, b, "inference_mode", False),
        (f"no_grad, batch {b}, channels_last", eager, b, "no_grad", True),
        (f"inference_mode, batch {b}, channels_last", eager, b, "inference_mode", True),
        ("inference_mode, batch 1, channels_last", eager, 1, "inference_mode", True),
        ("inference_mode, batch 8, channels_last", eager, 8, "inference_mode", True),
        (f"traced extractor: inference_mode, batch {b}, channels_last", traced, b, "inference_mode", True),
    ]
    results = []
    for size in args.sizes:
        images = tlh.preprocess(torch.rand(args.images, 3, size, size, generator=torch.Generator().manual_seed(0)),
                                size=size)
        rows = []
        for name, module, batch, grad_mode, channels_last in configs:
            n = min(args.images, args.naive_images) if batch == 1 else args.images  # batch 1 is slow
            run = _feature_loop(module, images[:n], batch_size=batch, grad_mode=grad_mode,
                                channels_last=channels_last, device=device)
            seconds = _median_time(run, device=device, warmup=args.warmup, repeats=args.repeats)
            rows.append({"size": size, "config": name, "images": n, "seconds": seconds, "images_per_s": n / seconds})
            print(f"  {size} px  {name:58s} {n / seconds:8.1f} img/s", flush=True)

        def extract():
            return tlh.extract_features(model, images, layer=args.layer, batch_size=b, cache=False, progress=False)
        seconds = _median_time(extract, device=device, warmup=args.warmup, repeats=args.repeats)
        rows.append({"size": size, "config": f"tlh.extract_features (batch {b}, cache off, incl. tracing+copy)",
                     "images": args.images, "seconds": seconds, "images_per_s": args.images / seconds})
        naive = rows[0]["images_per_s"]
        print(f"\n{size} px, device {device}:")
        print(_table([[r["config"], r["images"], f"{r['images_per_s']:.1f}", f"{r['images_per_s'] / naive:.2f}x"]
                      for r in rows], ["configuration", "images", "img/s", "vs naive"]))
        _print_ablation(rows, b)
        print()
        results.extend(rows)
    return results


def _print_ablation(rows: list[dict], batch: int) -> None:
    """Say what each switch is worth, holding the others fixed (ratios of the rows above)."""
    speed = {r["config"]: r["images_per_s"] for r in rows}
    pairs = [
        (f"batch 1 -> {batch} (no_grad, contiguous)",
         "naive: no_grad, batch 1, contiguous", f"no_grad, batch {batch}, contiguous"),
        (f"batch 1 -> {batch} (inference_mode, channels_last)",
         "inference_mode, batch 1, channels_last", f"inference_mode, batch {batch}, channels_last"),
        ("no_grad -> inference_mode (contiguous)",
         f"no_grad, batch {batch}, contiguous", f"inference_mode, batch {batch}, contiguous"),
        ("no_grad -> inference_mode (channels_last)",
         f"no_grad, batch {batch}, channels_last", f"inference_mode, batch {batch}, channels_last"),
        ("contiguous -> channels_last (no_grad)",
         f"no_grad, batch {batch}, contiguous", f"no_grad, batch {batch}, channels_last"),
        ("contiguous -> channels_last (inference_mode)",
         f"inference_mode, batch {batch}, contiguous", f"inference_mode, batch {batch}, channels_last"),
        ("eager module -> traced extractor",
         f"inference_mode, batch {batch}, channels_last",
         f"traced extractor: inference_mode, batch {batch}, channels_last"),
    ]
    print("ablation (speed-up from one change, others fixed; ~1.00x means it does not matter here):")
    print(_table([[label, f"{speed[b] / speed[a]:.2f}x"] for label, a, b in pairs], ["change", "speed-up"]))


# ---------------------------------------------------------------- notebooks
@contextlib.contextmanager
def _environ(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _busy_loop() -> None:
    while True:
        pass


@contextlib.contextmanager
def _busy(processes: int):
    """Keep ``processes`` CPU-bound processes running during the block: a shared machine, on purpose."""
    import multiprocessing

    burners = [multiprocessing.get_context("spawn").Process(target=_busy_loop, daemon=True)
               for _ in range(processes)]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join()


def _cell_seconds(cell) -> float:
    """Return how long a code cell ran, from the timestamps nbclient records, or 0.0."""
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _execute(path: Path, *, timeout: int, save: Path | None = None) -> tuple[float, str, list[float]]:
    """Run one notebook in a fresh kernel with a cold feature cache; return (seconds, status, cell seconds).

    With ``save``, the executed notebook (outputs included) is written to
    ``save/<assignment>/<name>.ipynb``, to read the numbers the run printed.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="tlh_bench_cache_") as cache, \
            _environ(TLH_NO_CACHE="1", TLH_CACHE_DIR=cache, MPLBACKEND="Agg"):
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        try:
            client.execute()
            status = "ok"
        except CellTimeoutError:
            status = f"TIMEOUT (a cell ran past {timeout} s)"
        except CellExecutionError as exc:
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            status = f"ERROR: {lines[-1][:100] if lines else type(exc).__name__}"
        seconds = time.perf_counter() - start
    cells = [_cell_seconds(cell) for cell in nb.cells if cell.cell_type == "code"]
    if save is not None:
        out = save / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out))
    return seconds, status, cells


def bench_notebooks(args) -> list[dict]:
    """Time every solution notebook end to end from a cold cache, against the budgets."""
    paths = sorted(Path(p) for p in glob.glob(args.glob))
    threads = {} if args.threads is None else {"TLH_THREADS": args.threads}
    with _environ(**threads), _busy(args.busy):
        _header(f"solution notebooks ({len(paths)} matching {args.glob!r}), cold: TLH_NO_CACHE=1, "
                f"a fresh TLH_CACHE_DIR; median of {args.repeats} after {args.warmup} warm-up kernel start(s); "
                f"TLH_THREADS={os.environ.get('TLH_THREADS', '(policy default)')}; "
                f"{args.busy} CPU-bound process(es) running beside")
        if not paths:
            print("no notebooks found: run from the repository root, or pass --glob")
            return []
        _warm_up(args)
        rows = [_bench_one(path, args) for path in paths]
    total = sum(r["seconds"] for r in rows)
    print()
    print(_table([[r["notebook"], f"{r['seconds']:.1f}", f"{r['slowest_cell']:.1f} (#{r['slowest_index']})",
                   f"{args.budget:.0f}", r["status"]] for r in rows]
                 + [["TOTAL", f"{total:.1f}", "", f"{args.total_budget:.0f}",
                     "ok" if total <= args.total_budget else "OVER BUDGET"]],
                 ["notebook", "seconds", "slowest cell (code cell #)", "budget", "status"]))
    return rows


def _warm_up(args) -> None:
    """Warm the disk cache and kernel start-up (imports of torch, torchvision, sklearn) so the first
    notebook is not charged for them; every timed run still starts a fresh kernel."""
    import nbformat
    from nbclient import NotebookClient

    for _ in range(args.warmup):
        warm = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "import tlhelpers as tlh, sklearn.linear_model, matplotlib.pyplot\nprint(tlh.device())")])
        NotebookClient(warm, timeout=args.timeout, kernel_name="python3").execute()


def _bench_one(path: Path, args) -> dict:
    """Run one notebook ``args.repeats`` times; return its median time, slowest cell and verdict."""
    runs, status = [], "ok"
    for _ in range(args.repeats):
        seconds, status, cells = _execute(path, timeout=args.timeout, save=args.save and Path(args.save))
        runs.append((seconds, cells))
        if status != "ok":
            break
    seconds = statistics.median(s for s, _ in runs)
    cells = runs[[s for s, _ in runs].index(min(runs, key=lambda r: abs(r[0] - seconds))[0])][1]
    slowest = max(cells, default=0.0)
    if status != "ok":
        verdict = status
    elif seconds > args.budget:
        verdict = "OVER BUDGET"
    elif slowest > args.cell_budget:
        verdict = f"SLOW CELL (over {args.cell_budget:.0f} s)"
    else:
        verdict = "ok"
    row = {"notebook": str(path), "seconds": seconds, "runs": len(runs), "status": verdict,
           "slowest_cell": slowest, "slowest_index": cells.index(slowest) if cells else -1, "cells": cells}
    print(f"  {path}: {seconds:.1f} s, slowest cell {slowest:.1f} s  {verdict}", flush=True)
    return row


# ---------------------------------------------------------------- grading a class
def _grading_course(root: Path, assignment: str, students: int) -> Path:
    """A course folder with ``students`` copies of the assignment's solution submitted (graded in full)."""
    import shutil
    import subprocess

    root.mkdir(parents=True)
    shutil.copy("nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(Path("solutions") / assignment, root / "solutions" / assignment)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"], cwd=root,
                   check=True, capture_output=True)
    for path in sorted((root / "solutions" / assignment).glob("*.ipynb")):
        for i in range(students):
            folder = root / "submitted" / f"student{i:03d}" / assignment
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / path.name)
    return root


def bench_grading(args) -> list[dict]:
    """Sequential ``nbgrader autograde`` vs the grade command with ``--jobs``, and a projection."""
    import subprocess

    from tlhelpers.instructor.course import Course, State

    _header(f"grading {args.submissions} submissions of {args.assignment}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    env.pop("NBGRADER_EXECUTION", None)
    notebook = sorted((Path("solutions") / args.assignment).glob("*.ipynb"))[0]
    before, status, _ = _execute(notebook, timeout=600)
    print(f"  the notebook alone: {before:.1f} s ({status})", flush=True)
    with tempfile.TemporaryDirectory(prefix="tlh-bench-grading-") as tmp:
        seq = _grading_course(Path(tmp) / "sequential", args.assignment, args.submissions)
        par = _grading_course(Path(tmp) / "parallel", args.assignment, args.submissions)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", args.assignment], cwd=seq, env=env,
                       check=True, capture_output=True)
        t_seq = time.perf_counter() - start
        print(f"  sequential nbgrader autograde: {t_seq:.1f} s", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "tlhelpers.instructor.grade", args.assignment, "--jobs", str(args.jobs),
               "--no-progress"] + (["--unsandboxed"] if args.unsandboxed else [])
        proc = subprocess.run(cmd, cwd=par, env=env, capture_output=True, text=True)
        t_par = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
        per = [entry["seconds"] for entry in State(Course(par)).data.values()]  # the command's own record
    # the machine's speed drifts over the minutes this takes: the notebook alone is timed again
    # after the gradings, and the mean of both runs is the yardstick
    after, status, _ = _execute(notebook, timeout=600)
    alone = (before + after) / 2
    print(f"  the notebook alone, again: {after:.1f} s ({status}); mean {alone:.1f} s", flush=True)
    core_s = t_par * args.jobs / args.submissions
    rows = [{"assignment": args.assignment, "submissions": args.submissions, "jobs": args.jobs,
             "notebook_alone_s": alone, "sequential_s": t_seq, "command_s": t_par,
             "speedup": t_seq / t_par, "core_s_per_submission": core_s,
             "overhead_vs_notebook": core_s / alone,
             "median_submission_s": statistics.median(per) if per else float("nan")}]
    r = rows[0]
    print(f"  grade --jobs {args.jobs}: {t_par:.1f} s; speedup {r['speedup']:.2f}x (goal >= 1.7x on 2 cores)")
    print(f"  per submission: {core_s:.1f} core-seconds = {r['overhead_vs_notebook']:.2f}x the notebook alone "
          f"(goal <= 1.2x); median wall per submission {r['median_submission_s']:.1f} s")
    total = 200 * 11
    print(f"  projection, 200 students x 11 assignments = {total} submissions at this assignment's cost "
          f"(scale by the mean notebook time of the course):")
    for cores in (16, 64, 256):
        minutes = total * core_s / cores / 60
        where = "one 16-core machine" if cores == 16 else f"a cluster of {cores} cores"
        print(f"    {where}: {minutes / 60:.1f} h" if minutes >= 90 else f"    {where}: {minutes:.0f} min")
    return rows


# ---------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.instructor.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the measurements to this JSON file")
    sub = parser.add_subparsers(dest="command", required=True)

    feat = sub.add_parser("features", help="EfficientNet-Lite0 feature-extraction throughput and ablation")
    feat.add_argument("--sizes", type=int, nargs="+", default=[64, 96], help="input sizes in px (default 64 96)")
    feat.add_argument("--batch", type=int, default=64, help="batch size of the batched paths (default 64)")
    feat.add_argument("--images", type=int, default=256, help="images per timed run (default 256)")
    feat.add_argument("--naive-images", type=int, default=64,
                      help="images per timed run at batch 1, the slow paths (default 64)")
    feat.add_argument("--layer", default="head", help="layer whose pooled output is the feature (default head)")
    feat.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    feat.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default 5)")

    nbs = sub.add_parser("notebooks", help="time every solution notebook end to end, cold")
    nbs.add_argument("--glob", default="solutions/*/*.ipynb", help="notebooks to run (default solutions/*/*.ipynb)")
    nbs.add_argument("--budget", type=float, default=NOTEBOOK_BUDGET_S, help="seconds per notebook (default 60)")
    nbs.add_argument("--total-budget", type=float, default=TOTAL_BUDGET_S, help="seconds for all (default 360)")
    nbs.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    nbs.add_argument("--warmup", type=int, default=1, help="warm-up kernel starts first (default 1)")
    nbs.add_argument("--repeats", type=int, default=1, help="runs per notebook; the median is reported (default 1)")
    nbs.add_argument("--save", metavar="DIR", help="write each executed notebook, with outputs, under DIR")
    nbs.add_argument("--cell-budget", type=float, default=CELL_BUDGET_S, help="seconds per cell (default 20)")
    nbs.add_argument("--busy", type=int, default=0, metavar="N",
                     help="run N CPU-bound processes beside the notebooks, as on a shared machine (default 0)")
    nbs.add_argument("--threads", metavar="N|auto",
                     help="TLH_THREADS for the notebooks' kernels (default: the course's policy)")
    nbs.add_argument("--strict", action="store_true",
                     help="exit 1 if a notebook or a cell is over budget, not only on errors")

    grd = sub.add_parser("grading", help="sequential nbgrader autograde vs the grade command, with a projection")
    grd.add_argument("--assignment", default="00-setup", help="assignment id (default 00-setup)")
    grd.add_argument("--submissions", type=int, default=30, help="copies of the solution graded (default 30)")
    grd.add_argument("--jobs", type=int, default=2, help="--jobs of the grade command (default 2)")
    grd.add_argument("--unsandboxed", action="store_true", help="pass --unsandboxed (no bubblewrap here)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one benchmark; return 1 when a notebook failed (or, with --strict, ran over budget)."""
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("images", "naive_images", "batch", "repeats", "timeout"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "warmup", 0) < 0:
        parser.error("--warmup must be at least 0")
    if getattr(args, "busy", 0) < 0:
        parser.error(f"--busy must be at least 0, got {args.busy}")

    if args.command == "features":
        rows = bench_features(args)
        failed = False
    elif args.command == "grading":
        rows = bench_grading(args)
        failed = False
    else:
        rows = bench_notebooks(args)
        budget_only = ("OVER BUDGET", "SLOW CELL")
        over = (sum(r["seconds"] for r in rows) > args.total_budget
                or any(r["status"].startswith(budget_only) for r in rows))
        failed = any(r["status"] != "ok" and not r["status"].startswith(budget_only) for r in rows) \
            or (args.strict and over)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": args.command, "argv": sys.argv[1:], "rows": rows},
                                              indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
