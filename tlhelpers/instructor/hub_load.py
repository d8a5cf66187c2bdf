"""A class at once: every student runs one notebook end to end in their own server on the hub.

    sudo python -m tlhelpers.instructor.hub_load --students s01,s02 --notebook solutions/03-feature-extraction/feature_extraction.ipynb

Run it beside ``python -m tlhelpers.instructor.hub`` (started with at least those students). Through
the hub's REST API it starts each student's server, makes a token for that student, opens a
kernel in the student's own server and runs the notebook's code cells there over the kernel's
websocket, as a student pressing Shift+Enter would, all students at once. Meanwhile it samples,
every half second, the memory of each student's processes (server and kernel together) and the
CPU and memory of the hub and its proxy. It prints a table and, with ``--json``, writes it.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect


@dataclass
class StudentRun:
    """One student's run: seconds from pressing the first Shift+Enter to the last reply, and how it ended."""

    user: str
    server_start_s: float = 0.0
    wall_s: float = 0.0
    cells: int = 0
    error: str = ""
    peak_rss_mb: float = 0.0


@dataclass
class HubUse:
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class LoadResult:
    notebook: str
    students: list[StudentRun] = field(default_factory=list)
    hub: HubUse = field(default_factory=HubUse)
    wall_s: float = 0.0


class Hub:
    """The hub's REST API with the class's admin token (``<state>/hub/admin-token``)."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token
        self.http = AsyncHTTPClient()

    async def call(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
        request = HTTPRequest(f"{self.url}{path}", method=method, request_timeout=600,
                              headers={"Authorization": f"token {token or self.token}"},
                              body=None if body is None and method == "GET" else json.dumps(body or {}),
                              allow_nonstandard_methods=True)
        reply = await self.http.fetch(request)
        return json.loads(reply.body) if reply.body else {}

    async def start_server(self, user: str, timeout: float = 300) -> float:
        """Start ``user``'s server (adding the user to the hub if they never logged in); its start time.

        A server that is already running is used as it is (its start time is then about 0).
        """
        started = time.monotonic()
        try:
            await self.call("POST", f"/hub/api/users/{user}", {})
        except HTTPClientError as err:
            if err.code != 409:  # 409: already a hub user
                raise
        info = await self.call("GET", f"/hub/api/users/{user}")
        if not info.get("servers", {}).get(""):  # a student already working keeps their server
            await self.call("POST", f"/hub/api/users/{user}/server", {})
        while time.monotonic() - started < timeout:
            info = await self.call("GET", f"/hub/api/users/{user}")
            if info.get("servers", {}).get("", {}).get("ready"):
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{user}'s server did not start within {timeout:.0f} s")


def _execute_request(code: str, session: str) -> dict:
    msg_id = uuid.uuid4().hex
    return {"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session, "username": "",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}


async def run_cells(ws_url: str, token: str, cells: list[str]) -> str:
    """Run each cell in turn on the kernel behind ``ws_url``; return the first error, or ''."""
    request = HTTPRequest(ws_url, headers={"Authorization": f"token {token}"})
    ws = await websocket_connect(request, max_message_size=256 * 1024 * 1024)
    session = uuid.uuid4().hex
    try:
        for index, code in enumerate(cells):
            request = _execute_request(code, session)
            await ws.write_message(json.dumps(request))
            while True:
                raw = await ws.read_message()
                if raw is None:
                    return f"cell {index}: the kernel's websocket closed"
                msg = json.loads(raw) if isinstance(raw, str) else {}
                if msg.get("parent_header", {}).get("msg_id") == request["header"]["msg_id"] \
                        and msg.get("msg_type") == "execute_reply":
                    break
            if msg["content"].get("status") != "ok":
                return f"cell {index}: {msg['content'].get('ename')}: {msg['content'].get('evalue')}"
        return ""
    finally:
        ws.close()


async def one_student(hub: Hub, run: StudentRun, cells: list[str]) -> None:
    """Start the student's server, run the notebook in a kernel there, stop it all again."""
    try:
        run.server_start_s = await hub.start_server(run.user)
        token = (await hub.call("POST", f"/hub/api/users/{run.user}/tokens", {"expires_in": 3600,
                                                                             "note": "hub_load"}))["token"]
        base = f"/user/{run.user}/api/kernels"
        kernel = await hub.call("POST", base, {"name": "python3"}, token=token)
        ws_url = f"{hub.url.replace('http', 'ws', 1)}{base}/{kernel['id']}/channels"
        started = time.monotonic()
        run.error = await run_cells(ws_url, token, cells)
        run.wall_s, run.cells = time.monotonic() - started, len(cells)
        await hub.call("DELETE", f"{base}/{kernel['id']}", token=token)
    except Exception as err:  # one student's failure is reported, the others go on
        run.error = run.error or f"{type(err).__name__}: {err}"
    finally:
        with contextlib.suppress(Exception):
            await hub.call("DELETE", f"/hub/api/users/{run.user}/server")


class Sampler(threading.Thread):
    """Every ``period`` s: peak memory of each student's processes, and of the hub with its proxy."""

    def __init__(self, users: list[str], hub_pid: int, period: float = 0.5):
        super().__init__(daemon=True)
        import pwd

        self.uids = {pwd.getpwnam(u).pw_uid: u for u in users}
        self.hub = psutil.Process(hub_pid)
        self.period, self.done = period, threading.Event()
        self.peak = dict.fromkeys(users, 0.0)
        self.hub_peak_mb, self.hub_cpu_s = 0.0, 0.0

    def _hub_tree(self) -> list[psutil.Process]:
        return [self.hub, *self.hub.children(recursive=False)]  # the hub and the proxy (servers run as users)

    def run(self) -> None:
        cpu_at_start = {p.pid: sum(p.cpu_times()[:2]) for p in self._hub_tree()}
        while not self.done.wait(self.period):
            rss = dict.fromkeys(self.peak, 0.0)
            for p in psutil.process_iter(["uids", "memory_info"]):
                user = self.uids.get(p.info["uids"].real if p.info["uids"] else -1)
                if user and p.info["memory_info"]:
                    rss[user] += p.info["memory_info"].rss / 2**20
            self.peak = {u: max(self.peak[u], rss[u]) for u in rss}
            tree = [p for p in self._hub_tree() if p.uids().real == self.hub.uids().real]
            self.hub_peak_mb = max(self.hub_peak_mb, sum(p.memory_info().rss for p in tree) / 2**20)
            self.hub_cpu_s = sum(sum(p.cpu_times()[:2]) - cpu_at_start.get(p.pid, 0.0) for p in tree)


def find_hub_pid(state: Path) -> int:
    config = str(state / "hub" / "jupyterhub_config.py")
    for p in psutil.process_iter(["cmdline"]):
        if config in (p.info["cmdline"] or []):
            return p.pid
    raise SystemExit(f"no hub running with {config}: start python -m tlhelpers.instructor.hub first")


async def run_class(hub: Hub, users: list[str], cells: list[str]) -> list[StudentRun]:
    runs = [StudentRun(user) for user in users]
    await asyncio.gather(*(one_student(hub, run, cells) for run in runs))
    return runs


def measure(url: str, state: Path, users: list[str], notebook: Path) -> LoadResult:
    """Run ``notebook`` for every user at once on the hub; return their times and the peaks."""
    cells = [c.source for c in nbformat.reads(notebook.read_text(), as_version=4).cells
             if c.cell_type == "code" and c.source.strip()]
    hub = Hub(url, (state / "hub" / "admin-token").read_text().strip())
    sampler = Sampler(users, find_hub_pid(state))
    sampler.start()
    started = time.monotonic()
    runs = asyncio.run(run_class(hub, users, cells))
    sampler.done.set()
    sampler.join()
    for run in runs:
        run.peak_rss_mb = sampler.peak[run.user]
    return LoadResult(notebook=str(notebook), students=runs, wall_s=time.monotonic() - started,
                      hub=HubUse(cpu_s=sampler.hub_cpu_s, peak_rss_mb=sampler.hub_peak_mb))


def report(result: LoadResult) -> str:
    lines = [f"{result.notebook}: {len(result.students)} student(s) at once, {result.wall_s:.1f} s in all",
             "| student | server start | notebook wall | peak memory (server + kernel) | result |",
             "|---|---|---|---|---|"]
    for r in result.students:
        lines.append(f"| {r.user} | {r.server_start_s:.1f} s | {r.wall_s:.1f} s | {r.peak_rss_mb:,.0f} MB | "
                     f"{r.error or f'{r.cells} cells ok'} |")
    lines.append(f"hub + proxy: {result.hub.cpu_s:.1f} CPU-s, peak {result.hub.peak_rss_mb:,.0f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.instructor.hub_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", required=True, help="comma-separated: users of the running hub")
    parser.add_argument("--notebook", type=Path, required=True, help="the notebook every student runs")
    parser.add_argument("--hub", default="http://127.0.0.1:8000", help="the hub's URL")
    parser.add_argument("--state", type=Path, default=Path("/srv/tlh-class"), help="the hub command's --state")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    users = [u.strip() for u in args.students.split(",") if u.strip()]
    result = measure(args.hub, args.state, users, args.notebook)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 1 if any(r.error for r in result.students) else 0


if __name__ == "__main__":
    sys.exit(main())
