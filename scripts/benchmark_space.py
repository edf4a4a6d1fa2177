"""Load benchmark of the demo/Space: a crowd of users against the app served on 127.0.0.1 in a subprocess.

    python scripts/benchmark_space.py outputs/polydigits/quickstart      # a burst of 100, then 50/s for 30 s
    python scripts/benchmark_space.py MODEL --burst 100 --burst 400 --rate 0      # two bursts, no sustained load
    python scripts/benchmark_space.py MODEL --changes --duration 10      # what each serving choice buys
    python scripts/benchmark_space.py MODEL --changes --markdown      # and record it on the results page

The app runs in its own process (`--app module:function`, default `polyglot_vision.serving.demo:launch`,
called as `factory(model, host="127.0.0.1", port=port, block=True, quiet=True, **app_kwargs)`), so that the
server's CPU time can be read from /proc apart from the client's. The load generator is one asyncio loop
with a minimal keep-alive HTTP/1.1 client (a few hundred microseconds of client CPU per request; a
general-purpose client costs as much as the server and would measure itself). Each simulated user makes
a browser's three calls, with a file of its own (Gradio stores uploads by content hash):

    POST /gradio_api/upload               multipart field "files"             -> ["<server path>"]
    POST /gradio_api/call/predict         {"data": [FileData, language, ""]}  -> {"event_id": …}  (503: busy)
    GET  /gradio_api/call/predict/<id>    event stream, ends with "event: complete" and the outputs

Loads: `--burst N` sends N requests at the same instant; `--rate R --duration D` sends request i at i/R s
(open loop: latency counts from the scheduled time, so a lagging client cannot hide queueing). For each
load it reports answered requests, errors by kind, latency p50/p95/p99 (upload to answer), requests/s
and the server's CPU per request. First, one round trip through gradio_client checks the API contract;
last, one more request checks that the server answers normally afterwards. Exit status 1 on any error.

`--changes` serves the app once per step, undoing the serving choices and adding them back one at a time
(one request per model call with torch's threads and Gradio's defaults, then batches, one torch thread,
rare queue analytics, httptools and uvloop), runs the same loads against each, and says what each bought.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOUNDARY = "pvbenchmarkboundary7d3f"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The serving choices of polyglot_vision.serving.demo.launch, undone and added back one at a time.
# "fast_http": False hides httptools and uvloop from the server, so uvicorn runs h11 on asyncio.
CHANGES = [
    (
        "one request per model call, torch's threads, 2 at once, Gradio's defaults",
        {"max_batch_size": 1, "torch_threads": None, "concurrency_limit": 2, "cheap_queue_analytics": False},
        False,
    ),
    ("+ batches of up to 64, one batch at a time", {"torch_threads": None, "cheap_queue_analytics": False}, False),
    ("+ one torch thread", {"cheap_queue_analytics": False}, False),
    ("+ rare queue analytics (the shipped app without httptools and uvloop)", {}, False),
    ("+ httptools and uvloop (the shipped app)", {}, True),
]


# --------------------------------------------------------------------------------------------------
# Server side (runs in the subprocess)
# --------------------------------------------------------------------------------------------------


def load_factory(spec: str):
    """ "module:function" or "path/file.py:function" -> the callable."""
    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target).resolve()
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)


def serve(model: str, app: str, app_kwargs: str, port: int, fast_http: bool) -> None:
    if not fast_http:  # uvicorn's "auto" then picks h11 and asyncio
        sys.modules["httptools"] = None
        sys.modules["uvloop"] = None
    load_factory(app)(model, host="127.0.0.1", port=port, block=True, quiet=True, **json.loads(app_kwargs))


# --------------------------------------------------------------------------------------------------
# The load generator
# --------------------------------------------------------------------------------------------------


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams; bodies are read whole (length or chunked).

    The event stream of /gradio_api/call/<api>/<id> ends after its `complete` event, so reading it whole is fine.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str | None = None):
        while self.idle:  # a kept-alive connection that the server has closed meanwhile: try the next one
            reader, writer = self.idle.pop()
            try:
                return await self.exchange(reader, writer, method, path, body, content_type)
            except (ConnectionError, asyncio.IncompleteReadError):
                continue
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self.exchange(reader, writer, method, path, body, content_type)

    async def exchange(self, reader, writer, method, path, body, content_type) -> tuple[int, bytes]:
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            if method != "GET":
                head += f"Content-Length: {len(body)}\r\n"
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split()[1])
            headers = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip().lower()
            keep = headers.get("connection") != "close"
            if headers.get("transfer-encoding") == "chunked":
                chunks = []
                while size := int((await reader.readline()).split(b";")[0], 16):
                    chunks.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                await reader.readline()
                data = b"".join(chunks)
            elif "content-length" in headers:
                data = await reader.readexactly(int(headers["content-length"]))
            else:
                data, keep = await reader.read(), False
        except BaseException:
            writer.close()
            raise
        if keep:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return status, data

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def multipart(name: str, png: bytes, tag: str) -> bytes:
    """An upload of `png` made distinct by `tag` (bytes after a PNG's end are ignored by decoders)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
    tail = f"\r\n--{BOUNDARY}--\r\n"
    return (head + "Content-Type: image/png\r\n\r\n").encode() + png + tag.encode() + tail.encode()


def parse_events(text: str) -> tuple[str | None, object]:
    """The `complete` or `error` event of an event stream: (event, decoded data)."""
    event, found = None, (None, None)
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            found = (event, json.loads(line[5:]))
    return found


async def one_request(http: RawHTTP, api: str, upload: bytes, language: str) -> tuple[str, str]:
    """Upload, call, read the answer: ("ok", "") or (error kind, detail)."""
    status, body = await http.request(
        "POST", "/gradio_api/upload", upload, f"multipart/form-data; boundary={BOUNDARY}"
    )
    if status != 200:
        return f"upload_http_{status}", body[:200].decode(errors="replace")
    file = {"path": json.loads(body)[0], "meta": {"_type": "gradio.FileData"}}
    call = json.dumps({"data": [file, language, ""]}).encode()
    status, body = await http.request("POST", f"/gradio_api/call/{api}", call, "application/json")
    if status != 200:
        return ("busy" if status == 503 else f"call_http_{status}"), body[:200].decode(errors="replace")
    status, body = await http.request("GET", f"/gradio_api/call/{api}/{json.loads(body)['event_id']}")
    if status != 200:
        return f"stream_http_{status}", body[:200].decode(errors="replace")
    event, outputs = parse_events(body.decode())
    if event == "error":
        return "app_error", json.dumps(outputs, ensure_ascii=False)[:200]
    if event != "complete":
        return "no_answer", "the event stream ended without a complete event"
    if not outputs or not outputs[0]:
        return "empty_answer", json.dumps(outputs, ensure_ascii=False)[:200]
    return "ok", ""


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))], 3)


async def run_load(name: str, args, port: int, pid: int, images: list[tuple[str, bytes]], starts: list[float]) -> dict:
    """Send one request at each offset of `starts` (seconds from the start of the load) and report."""
    http = RawHTTP("127.0.0.1", port)
    tag = f"#{name}-{time.time_ns()}-"
    uploads = [multipart(*images[i % len(images)], tag + str(i)) for i in range(len(starts))]
    await asyncio.sleep(0.5)
    cpu_before, client_before = server_cpu_seconds(pid), time.process_time()
    began = time.perf_counter()
    lags: list[float] = []

    async def user(i: int, offset: float) -> tuple[str, str, float]:
        due = began + offset
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        lags.append(time.perf_counter() - due)
        try:
            kind, detail = await asyncio.wait_for(one_request(http, args.api, uploads[i], args.language), args.timeout)
        except asyncio.TimeoutError:
            kind, detail = "timeout", f"no answer in {args.timeout} s"
        except Exception as err:  # noqa: BLE001 - a load test counts failures, it does not stop at one
            kind, detail = type(err).__name__, str(err)[:200]
        return kind, detail, time.perf_counter() - due

    results = await asyncio.gather(*(user(i, offset) for i, offset in enumerate(starts)))
    wall = time.perf_counter() - began
    server_cpu, client_cpu = server_cpu_seconds(pid) - cpu_before, time.process_time() - client_before
    http.close()
    latencies = [seconds for kind, _, seconds in results if kind == "ok"]
    errors = Counter(kind for kind, _, _ in results if kind != "ok")
    n = len(results)
    return {
        "requests": n,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_examples": {kind: detail for kind, detail, _ in reversed(results) if kind != "ok"},
        "latency_s": {q: percentile(latencies, p) for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "throughput_rps": round(len(latencies) / wall, 1),
        "wall_s": round(wall, 2),
        "server_cpu_ms_per_request": round(1000 * server_cpu / n, 2),
        "server_cpu_cores": round(server_cpu / wall, 2),
        "client_cpu_ms_per_request": round(1000 * client_cpu / n, 2),
        "client_send_lag_max_s": round(max(lags), 3),
    }


def contract_check(url: str, image: Path, language: str, api: str) -> dict:
    """One round trip through the official gradio_client, as an API user makes it."""
    from gradio_client import Client, handle_file

    started = time.perf_counter()
    label, note = Client(url, verbose=False).predict(handle_file(str(image)), language, "", api_name=f"/{api}")
    if not label or not label.get("label"):
        raise SystemExit(f"contract check failed: gradio_client got {label!r}, {note!r}")
    return {"seconds": round(time.perf_counter() - started, 2), "answer": label["label"]}


async def measure(args, port: int, pid: int, images: list[tuple[str, bytes]]) -> dict:
    url = f"http://127.0.0.1:{port}"
    http = RawHTTP("127.0.0.1", port)
    for i in range(args.warmup):  # the model and the code paths, warm
        kind, detail = await one_request(http, args.api, multipart(*images[i % len(images)], f"#warm{i}"), "en")
        if kind != "ok":
            raise SystemExit(f"warm-up request failed: {kind} {detail}")
    http.close()
    await run_load("warm-burst", args, port, pid, images, [0.0] * args.warmup_burst)  # and a batch of many
    report = {"contract_check": await asyncio.to_thread(contract_check, url, args.images[0], args.language, args.api)}
    before = server_cpu_seconds(pid)
    await asyncio.sleep(2)
    report["server_idle_cpu_cores"] = round((server_cpu_seconds(pid) - before) / 2, 3)
    runs = {}
    for i, n in enumerate(args.burst):
        name = f"burst of {n}" + (f" ({args.burst[:i].count(n) + 1})" if args.burst.count(n) > 1 else "")
        runs[name] = await run_load(f"burst{i}", args, port, pid, images, [0.0] * n)
    if args.rate:
        count = int(args.rate * args.duration)
        starts = [i / args.rate for i in range(count)]
        runs[f"{args.rate:g}/s for {args.duration:g} s"] = await run_load("rate", args, port, pid, images, starts)
    report["runs"] = runs
    http = RawHTTP("127.0.0.1", port)
    started = time.perf_counter()
    kind, detail = await one_request(http, args.api, multipart(*images[0], "#after"), args.language)
    http.close()
    report["afterwards"] = {"answer": kind, "detail": detail, "seconds": round(time.perf_counter() - started, 3)}
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_served(server: subprocess.Popen, port: int, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}):\n{server.stderr.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"GET /gradio_api/info HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                if sock.recv(16).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not answer within {seconds:.0f} s")


def serve_and_measure(args, app_kwargs: dict, fast_http: bool) -> dict:
    """Start the app in a subprocess, measure every load against it, stop it."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pv-space-benchmark-") as uploads:
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", GRADIO_TEMP_DIR=uploads)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
        command = [sys.executable, __file__, args.model, "--app", args.app, "--serve", str(port)]
        command += ["--app-kwargs", json.dumps(app_kwargs)] + ([] if fast_http else ["--no-fast-http"])
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            started = time.perf_counter()
            wait_until_served(server, port)
            startup = time.perf_counter() - started
            images = [(path.name, path.read_bytes()) for path in args.images]
            report = asyncio.run(asyncio.wait_for(measure(args, port, server.pid, images), args.deadline))
            report["startup_s"] = round(startup, 1)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return report


def failed(report: dict) -> bool:
    return any(run["errors"] for run in report["runs"].values()) or report["afterwards"]["answer"] != "ok"


def print_runs(title: str, runs: dict) -> None:
    print(f"\n{title}", file=sys.stderr)
    for name, run in runs.items():
        lat = run["latency_s"]
        print(
            f"  {name:>16}: {run['ok']}/{run['requests']} answered, {run['errors']} errors {run['error_kinds'] or ''}"
            f" | p50 {lat['p50']} s, p95 {lat['p95']} s, p99 {lat['p99']} s | {run['throughput_rps']} requests/s"
            f" | server CPU {run['server_cpu_ms_per_request']} ms/request ({run['server_cpu_cores']} cores)",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("--burst", type=int, action="append", help="N requests at once (repeatable; default 100)")
    parser.add_argument("--rate", type=float, default=50, help="sustained requests/s (0: none)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of the sustained load")
    parser.add_argument("--changes", action="store_true", help="measure each serving choice added in turn")
    parser.add_argument("--app", default="polyglot_vision.serving.demo:launch", help="app factory, module:function")
    parser.add_argument("--app-kwargs", default="{}", help="JSON keyword arguments for the factory")
    parser.add_argument("--no-fast-http", dest="fast_http", action="store_false", help="hide httptools and uvloop")
    parser.add_argument("--api", default="predict", help="api_name of the endpoint")
    parser.add_argument("--language", default="fr")
    parser.add_argument("--examples", default=str(REPO / "space" / "examples"), help="folder of PNG images to send")
    parser.add_argument("--warmup", type=int, default=5, help="requests one by one before measuring")
    parser.add_argument("--warmup-burst", type=int, default=32, help="then requests at once, not measured")
    parser.add_argument("--timeout", type=float, default=30, help="seconds allowed per request")
    parser.add_argument("--deadline", type=float, default=600, help="seconds allowed per served app")
    parser.add_argument("--output", help="also write the JSON report here")
    parser.add_argument("--markdown", action="store_true", help="record the result on the results page")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        serve(args.model, args.app, args.app_kwargs, args.serve, args.fast_http)
        return 0
    args.burst = args.burst or [100]
    if any(n < 1 for n in args.burst) or sum(args.burst) > 2000 or args.rate * args.duration > 5000 or args.rate < 0:
        parser.error("keep runs bounded: bursts of 1..2000 requests in all, at most 5000 sustained ones")
    args.images = sorted(Path(args.examples).glob("*.png"))
    if not args.images:
        parser.error(f"--examples {args.examples}: no PNG images")

    report = {"model": args.model, "app": args.app, "cpu_count": os.cpu_count()}
    report["load_average_before"] = round(os.getloadavg()[0], 2)  # other work on the machine skews every number
    if args.changes:
        steps = []
        for change, kwargs, fast_http in CHANGES:
            measured = serve_and_measure(args, {**json.loads(args.app_kwargs), **kwargs}, fast_http)
            print_runs(change, measured["runs"])
            steps.append({"change": change, "app_kwargs": kwargs, "fast_http": fast_http, **measured})
        report["changes"] = steps
        report.update({k: v for k, v in steps[-1].items() if k not in ("change", "app_kwargs", "fast_http")})
    else:
        report["app_kwargs"] = json.loads(args.app_kwargs)
        report.update(serve_and_measure(args, report["app_kwargs"], args.fast_http))
        print_runs(f"{args.app} {args.app_kwargs}", report["runs"])

    report["load_average_after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    if args.markdown:
        from results_page import record

        print(f"results page: {record('space', report)}", file=sys.stderr)
    return 1 if failed(report) else 0  # the app as shipped; the earlier steps of --changes may fail


if __name__ == "__main__":
    sys.exit(main())
