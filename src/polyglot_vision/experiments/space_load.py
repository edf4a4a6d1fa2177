"""The Space under a crowd, driven by the clients users bring: latency, errors and the server's CPU per request.

    python scripts/benchmark_space.py outputs/polydigits/quickstart --markdown

The demo runs as `polyglot-vision demo MODEL` in a process of its own (experiments/served.py), so that its CPU
time is read from /proc apart from the load generator's. Each simulated user brings one client, with a
connection of its own, and asks for one answer:

- `httpx`: Gradio's plain HTTP API as its docs show it: POST /gradio_api/upload (multipart field "files"),
  POST /gradio_api/call/<api> {"data": [...]} -> event id, GET /gradio_api/call/<api>/<id> (an event stream).
- `browser`: the page's own sequence (Gradio's JS client): POST /gradio_api/upload?upload_id=… with its
  /gradio_api/upload_progress stream, POST /gradio_api/queue/join {data, fn_index, trigger_id, session_hash},
  then the /gradio_api/queue/data?session_hash=… stream until `process_completed`.
- `gradio_client`: `Client(url).predict(handle_file(png), …)`, one Client per user made before the load starts,
  each call in a thread of its own.
- `floor`: a minimal keep-alive HTTP/1.1 client on asyncio streams speaking the `httpx` sequence; what the
  server costs when the client costs nearly nothing.

Each client sends the same image to every user (`same`) and a distinct one to each (`distinct`: bytes added after
the PNG's end, which decoders ignore; Gradio stores uploads by content hash). Loads: a burst (N users at the same
instant) and an open-loop rate (request i sent at i/R s; latency counts from the scheduled time, so a lagging
generator cannot hide queueing). For each: answered, errors by kind, latency p50/p95/p99/max (upload to answer),
answers/s, server CPU per request (all threads of the server process) and the generator's own CPU per request.

Every client but the floor sends its users from a few worker processes (`processes`, a fresh pool for each
client), each its share of the users from the same instant: the httpx and browser users in the worker's asyncio
loop, the gradio_client users (synchronous) in a thread each, their Clients made during the warm-up. One asyncio
loop cannot send a crowd's HTTP as fast as a crowd, and on a shared machine the scheduler hands out the cores per
thread; all clients are sent alike, so that their figures compare.

The generator runs on the same machine as the server, so its own cost is kept out of the server's way where a
user's machine would not pay it at all: each httpx user shares one TLS context (an http:// URL makes no TLS, but
every new httpx client loads the CA bundle, ~10 ms), gradio_client users pass `ssl_verify=False` for the same
reason (it makes a new httpx client for each call), and httpcore's search for the absent `sniffio` module on every
pool operation is answered at once. The server sees the same requests either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import secrets
import ssl
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

from .served import serve_demo, server_cpu_seconds

__all__ = ["CLIENTS", "IMAGES", "TARGETS", "failed", "floor_burst", "measure_space", "run_load"]

CLIENTS = ("httpx", "browser", "gradio_client", "floor")
IMAGES = ("same", "distinct")
BOUNDARY = "pvloadboundary7d3f"


# --------------------------------------------------------------------------------------------------
# Answers read from event streams
# --------------------------------------------------------------------------------------------------


def parse_call_stream(text: str) -> tuple[str | None, object]:
    """The `complete` or `error` event of a /gradio_api/call stream: (event, decoded data)."""
    event, found = None, (None, None)
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            found = (event, json.loads(line[5:]))
    return found


def parse_queue_stream(text: str, event_id: str) -> tuple[str | None, object]:
    """The `process_completed` message of event `event_id` in a /gradio_api/queue/data stream."""
    for line in text.splitlines():
        if line.startswith("data:"):
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                output = message.get("output") or {}
                return ("complete", output.get("data")) if message.get("success") else ("error", output)
    return None, None


def judge(event: str | None, outputs) -> tuple[str, str]:
    """("ok", "") for an answer with a label, else (error kind, detail)."""
    if event == "error":
        return "app_error", json.dumps(outputs, ensure_ascii=False)[:200]
    if event != "complete":
        return "no_answer", "the event stream ended without the answer"
    if not outputs or not outputs[0]:
        return "empty_answer", json.dumps(outputs, ensure_ascii=False)[:200]
    return "ok", ""


def http_failure(step: str, status: int, body: bytes | str) -> tuple[str, str]:
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    return ("busy" if status == 503 else f"{step}_http_{status}"), text[:200]


def file_data(path: str, name: str, size: int) -> dict:
    meta = {"_type": "gradio.FileData"}
    return {"path": path, "orig_name": name, "size": size, "mime_type": "image/png", "meta": meta}


# --------------------------------------------------------------------------------------------------
# Clients: each `user(png, name)` is one user's whole request on a connection of its own
# --------------------------------------------------------------------------------------------------


class HttpxUser:
    """Gradio's plain HTTP API through httpx, as its docs show it (upload, call, event stream)."""

    def __init__(self, url: str, api: str, inputs: list, tls: ssl.SSLContext, timeout: float):
        self.url, self.api, self.inputs, self.tls, self.timeout = url, api, inputs, tls, timeout

    def client(self):
        return httpx.AsyncClient(base_url=self.url, timeout=self.timeout, verify=self.tls)

    async def user(self, png: bytes, name: str) -> tuple[str, str]:
        async with self.client() as http:
            response = await http.post("/gradio_api/upload", files={"files": (name, png, "image/png")})
            if response.status_code != 200:
                return http_failure("upload", response.status_code, response.text)
            data = [file_data(response.json()[0], name, len(png)), *self.inputs]
            response = await http.post(f"/gradio_api/call/{self.api}", json={"data": data})
            if response.status_code != 200:
                return http_failure("call", response.status_code, response.text)
            response = await http.get(f"/gradio_api/call/{self.api}/{response.json()['event_id']}")
            if response.status_code != 200:
                return http_failure("stream", response.status_code, response.text)
            return judge(*parse_call_stream(response.text))


class BrowserUser(HttpxUser):
    """The page's own sequence, as Gradio's JS client sends it: upload with progress, queue/join, queue/data."""

    def __init__(self, url, api, inputs, tls, timeout, fn_index: int, trigger_id: int | None):
        super().__init__(url, api, inputs, tls, timeout)
        self.fn_index, self.trigger_id = fn_index, trigger_id

    async def user(self, png: bytes, name: str) -> tuple[str, str]:
        upload_id, session = secrets.token_hex(6), secrets.token_hex(6)
        async with self.client() as http:

            async def progress():  # the upload widget follows its progress until "done"
                async with http.stream("GET", "/gradio_api/upload_progress", params={"upload_id": upload_id}) as s:
                    async for line in s.aiter_lines():
                        if line.startswith("data:") and json.loads(line[5:]).get("msg") == "done":
                            return

            files = {"files": (name, png, "image/png")}
            upload = http.post("/gradio_api/upload", params={"upload_id": upload_id}, files=files)
            response, _ = await asyncio.gather(upload, progress())
            if response.status_code != 200:
                return http_failure("upload", response.status_code, response.text)
            body = {
                "data": [file_data(response.json()[0], name, len(png)), *self.inputs],
                "event_data": None,
                "fn_index": self.fn_index,
                "trigger_id": self.trigger_id,
                "session_hash": session,
            }
            response = await http.post("/gradio_api/queue/join", json=body)
            if response.status_code != 200:
                return http_failure("join", response.status_code, response.text)
            event_id = response.json()["event_id"]
            response = await http.get("/gradio_api/queue/data", params={"session_hash": session})
            if response.status_code != 200:
                return http_failure("stream", response.status_code, response.text)
            return judge(*parse_queue_stream(response.text, event_id))


class GradioClientUsers:
    """`gradio_client.Client(url).predict(...)`: Clients made ahead (at least `users`), each call in a thread."""

    def __init__(self, url: str, api: str, inputs: list, users: int, timeout: float):
        self.url, self.api, self.inputs, self.timeout = url, api, inputs, timeout
        self.clients: list[Client] = []
        self.threads = ThreadPoolExecutor(max_workers=max(users, 64))  # a sustained load may hold more at once
        self.folder = tempfile.TemporaryDirectory(prefix="pv-space-load-")  # gradio_client sends files from disk
        self.next = 0
        self.ensure(users)

    def ensure(self, users: int) -> None:
        """Make Clients until there are `users` of them (each fetches the app's config and API info)."""
        while len(self.clients) < users:
            self.clients.append(Client(self.url, verbose=False, ssl_verify=False))

    def predict(self, client, path: str) -> tuple[str, str]:
        outputs = client.predict(handle_file(path), *self.inputs, api_name=f"/{self.api}")
        return judge("complete", list(outputs))

    async def user(self, png: bytes, name: str) -> tuple[str, str]:
        path = Path(self.folder.name) / f"{secrets.token_hex(6)}-{name}"
        path.write_bytes(png)
        client = self.clients[self.next % len(self.clients)]
        self.next += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.threads, self.predict, client, str(path))
        except Exception as err:  # noqa: BLE001 - gradio_client raises its own kinds; count them
            return type(err).__name__, str(err)[:200]

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        for client in self.clients:
            client.close()
        self.folder.cleanup()


_GRADIO_CLIENT_USERS: dict[str, GradioClientUsers] = {}  # a worker process's Clients, kept from load to load


def gradio_client_users(spec: dict, users: int) -> GradioClientUsers:
    """This process's gradio_client users for `spec`'s app, at least `users` (and `spec["users"]`) of them."""
    users = max(users, spec.get("users", 0))
    pool = _GRADIO_CLIENT_USERS.get(spec["url"])
    if pool is None:
        pool = _GRADIO_CLIENT_USERS[spec["url"]] = GradioClientUsers(
            spec["url"], spec["api"], spec["inputs"], users, spec["timeout"]
        )
    pool.ensure(users)
    return pool


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams; bodies are read whole (length or chunked)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def request(self, streams, method: str, path: str, body: bytes = b"", content_type: str | None = None):
        reader, writer = streams
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if method != "GET":
            head += f"Content-Length: {len(body)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status, headers = int(status_line.split()[1]), {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            chunks = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readline()
            return status, b"".join(chunks)
        if "content-length" in headers:
            return status, await reader.readexactly(int(headers["content-length"]))
        return status, await reader.read()


class FloorUser:
    """The `httpx` sequence through `RawHTTP`: a few hundred microseconds of client CPU per request."""

    def __init__(self, port: int, api: str, inputs: list):
        self.http, self.api, self.inputs = RawHTTP("127.0.0.1", port), api, inputs

    async def user(self, png: bytes, name: str) -> tuple[str, str]:
        streams = await asyncio.open_connection("127.0.0.1", self.http.port)
        try:
            head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            upload = (head + "Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()
            form = f"multipart/form-data; boundary={BOUNDARY}"
            status, body = await self.http.request(streams, "POST", "/gradio_api/upload", upload, form)
            if status != 200:
                return http_failure("upload", status, body)
            call = json.dumps({"data": [file_data(json.loads(body)[0], name, len(png)), *self.inputs]}).encode()
            path = f"/gradio_api/call/{self.api}"
            status, body = await self.http.request(streams, "POST", path, call, "application/json")
            if status != 200:
                return http_failure("call", status, body)
            event_id = json.loads(body)["event_id"]
            status, body = await self.http.request(streams, "GET", f"/gradio_api/call/{self.api}/{event_id}")
            if status != 200:
                return http_failure("stream", status, body)
            return judge(*parse_call_stream(body.decode()))
        finally:
            streams[1].close()


# --------------------------------------------------------------------------------------------------
# Loads
# --------------------------------------------------------------------------------------------------


def burst_starts(n: int) -> list[float]:
    return [0.0] * n


def rate_starts(rate: float, seconds: float) -> list[float]:
    return [i / rate for i in range(int(rate * seconds))]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))], 3)


def uploads_for(images: list[tuple[str, bytes]], n: int, mode: str) -> list[tuple[str, bytes]]:
    """`n` uploads: the first image for every user (`same`), or the images made distinct per user (`distinct`)."""
    if mode == "same":
        return [images[0]] * n
    tag = f"#{time.time_ns()}-"
    picked = [images[i % len(images)] for i in range(n)]
    return [(name, png + f"{tag}{i}".encode()) for i, (name, png) in enumerate(picked)]


async def send_all(user, uploads, starts, began: float, timeout: float) -> list[tuple[str, str, float, float]]:
    """Send upload i at `began + starts[i]` (perf_counter seconds): (kind, detail, latency, lag) for each."""

    async def one(i: int, offset: float) -> tuple[str, str, float, float]:
        due = began + offset
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        lag = time.perf_counter() - due
        try:
            kind, detail = await asyncio.wait_for(user(uploads[i][1], uploads[i][0]), timeout)
        except asyncio.TimeoutError:
            kind, detail = "timeout", f"no answer in {timeout} s"
        except Exception as err:  # noqa: BLE001 - a load test counts failures, it does not stop at one
            kind, detail = type(err).__name__, str(err)[:200]
        return kind, detail, time.perf_counter() - due, lag

    return await asyncio.gather(*(one(i, offset) for i, offset in enumerate(starts)))


def make_user(spec: dict, users: int = 0):
    """The `user(png, name)` coroutine function of a client for `users` users, from a picklable description."""
    if spec["client"] == "gradio_client":
        return gradio_client_users(spec, users).user
    tls = ssl.create_default_context()
    if spec["client"] == "httpx":
        return HttpxUser(spec["url"], spec["api"], spec["inputs"], tls, spec["timeout"]).user
    if spec["client"] == "browser":
        args = (spec["url"], spec["api"], spec["inputs"], tls, spec["timeout"], spec["fn_index"], spec["trigger_id"])
        return BrowserUser(*args).user
    return FloorUser(spec["port"], spec["api"], spec["inputs"]).user


def send_slice(spec: dict, uploads, starts, start_at: float, timeout: float):
    """In a worker process: its share of the users, from the wall-clock instant `start_at`; (results, CPU s)."""
    quiet_httpcore()
    cpu = time.process_time()
    user = make_user(spec, len(uploads))
    began = time.perf_counter() + (start_at - time.time())
    results = asyncio.run(send_all(user, uploads, starts, began, timeout))
    return results, time.process_time() - cpu


async def run_load(user, pid: int, uploads, starts, timeout: float, workers=None, spec=None) -> dict:
    """Send upload i at `starts[i]` seconds through `user(png, name)`, or through `spec`'s client spread over the
    `workers` (a process pool: one asyncio loop cannot send a crowd's HTTP as fast as the crowd, and CFS gives a
    shared machine's cores per thread); what came back, and what it cost."""
    await asyncio.sleep(0.5)  # the previous load's last connections close
    cpu_before, client_before = server_cpu_seconds(pid), time.process_time()
    if workers is None:
        began = time.perf_counter()
        results = await send_all(user, uploads, starts, began, timeout)
        worker_cpu = 0.0
    else:
        n = workers._max_workers
        start_at = time.time() + 0.5  # every worker starts its users at the same instant
        loop = asyncio.get_running_loop()
        slices = [
            loop.run_in_executor(workers, send_slice, spec, uploads[w::n], starts[w::n], start_at, timeout)
            for w in range(n)
        ]
        began = time.perf_counter() + (start_at - time.time())
        done = await asyncio.gather(*slices)
        results = [result for part, _ in done for result in part]
        worker_cpu = sum(cpu for _, cpu in done)
    wall = time.perf_counter() - began
    server_cpu = server_cpu_seconds(pid) - cpu_before
    client_cpu = time.process_time() - client_before + worker_cpu
    latencies = [seconds for kind, _, seconds, _ in results if kind == "ok"]
    errors = Counter(kind for kind, _, _, _ in results if kind != "ok")
    n = len(results)
    return {
        "requests": n,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_examples": {kind: detail for kind, detail, _, _ in reversed(results) if kind != "ok"},
        "latency_s": {q: percentile(latencies, p) for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "throughput_rps": round(len(latencies) / wall, 1),
        "wall_s": round(wall, 2),
        "server_cpu_ms_per_request": round(1000 * server_cpu / n, 2),
        "server_cpu_cores": round(server_cpu / wall, 2),
        "client_cpu_ms_per_request": round(1000 * client_cpu / n, 2),
        "client_send_lag_max_s": round(max(lag for _, _, _, lag in results), 3),
    }


def median_round(rounds: list[dict]) -> dict:
    """The round whose p95 is the median of the rounds' (a shared machine's other work skews single runs)."""
    if len(rounds) == 1:
        return rounds[0]
    ordered = sorted(rounds, key=lambda r: (r["errors"], r["latency_s"]["p95"] or float("inf")))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds"] = len(rounds)
    chosen["p95_of_rounds_s"] = [r["latency_s"]["p95"] for r in rounds]
    chosen["server_cpu_ms_of_rounds"] = [r["server_cpu_ms_per_request"] for r in rounds]
    chosen["errors_of_rounds"] = [r["errors"] for r in rounds]
    chosen["errors"] = max(r["errors"] for r in rounds)  # an error in any round counts
    return chosen


# --------------------------------------------------------------------------------------------------
# The whole benchmark
# --------------------------------------------------------------------------------------------------


def endpoint(url: str, api: str) -> tuple[int, int | None]:
    """(fn_index, trigger_id) of the event named `api` in the page's config, as the page sends them."""
    config = httpx.get(f"{url}/config", timeout=30).json()
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api:
            targets = dependency.get("targets") or [[None]]
            return dependency["id"], targets[0][0]
    raise RuntimeError(f"the demo has no event named {api!r}")


def quiet_httpcore() -> None:
    """httpcore tries `import sniffio` on every pool operation; absent (the anyio installed here does not need it),
    each try searches sys.path (~0.3 ms), which makes a same-machine load generator measure itself. Answer at once."""
    if importlib.util.find_spec("sniffio") is None:
        sys.modules.setdefault("sniffio", None)


async def measure_clients(
    served, images, *, clients, modes, burst, rate, duration, rate_clients, rounds, api, inputs, timeout, processes
) -> list[dict]:
    fn_index, trigger_id = await asyncio.to_thread(endpoint, served.url, api)
    spawn = multiprocessing.get_context("spawn")
    runs = []
    for client in clients:
        spec = {"client": client, "url": served.url, "port": served.port, "api": api, "inputs": inputs}
        spec.update(timeout=timeout, fn_index=fn_index, trigger_id=trigger_id)
        spread = bool(processes) and client != "floor"  # the floor is nearly free: one loop sends a crowd on time
        if spread:
            spec["users"] = -(-burst // processes)  # each worker's share of a burst (its gradio_client Clients)
        with ProcessPoolExecutor(processes, mp_context=spawn) if spread else contextlib.nullcontext() as workers:
            user = None if spread else await asyncio.to_thread(make_user, spec, burst)

            def load(uploads, starts, user=user, workers=workers, spec=spec):
                return run_load(user, served.pid, uploads, starts, timeout, workers, spec if workers else None)

            try:
                # The warm-up starts the workers and makes their Clients; its figures are not kept.
                warm_users = burst if client == "gradio_client" else min(16, burst)
                warm = await load(uploads_for(images, warm_users, "distinct"), burst_starts(warm_users))
                if warm["errors"]:
                    raise RuntimeError(f"{client}: the warm-up failed: {warm['error_examples']}")
                loads = [(f"burst of {burst}", burst_starts(burst), rounds)]
                if rate and client in rate_clients:
                    loads.append((f"{rate:g}/s for {duration:g} s", rate_starts(rate, duration), 1))
                for name, starts, repeats in loads:
                    for mode in modes:
                        measured = [await load(uploads_for(images, len(starts), mode), starts) for _ in range(repeats)]
                        runs.append({"client": client, "images": mode, "load": name, **median_round(measured)})
                        print_run(runs[-1])
            finally:
                if pool := _GRADIO_CLIENT_USERS.pop(served.url, None):  # this process's own, if it sent any
                    pool.close()
    return runs


def measure_space(
    model: str,
    examples: str | Path,
    *,
    clients: tuple[str, ...] = CLIENTS,
    modes: tuple[str, ...] = IMAGES,
    burst: int = 100,
    rate: float = 50,
    duration: float = 60,
    rate_clients: tuple[str, ...] = ("httpx",),
    rounds: int = 3,
    api: str = "predict",
    language: str = "fr",
    timeout: float = 30,
    processes: int = 4,
) -> dict:
    """Serve `model` with `polyglot-vision demo`, load it with every client and image mode; the report.

    `processes`: worker processes that send the users of each client but the floor (0: all from this process).
    """
    paths = sorted(Path(examples).glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"{examples}: no PNG images to send")
    images = [(path.name, path.read_bytes()) for path in paths]
    quiet_httpcore()
    report = {"model": model, "cpu_count": os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2)}
    report["generator_processes"] = processes
    with serve_demo(model) as served:
        report["startup_s"] = served.startup_s
        before = server_cpu_seconds(served.pid)
        time.sleep(2)
        report["server_idle_cpu_cores"] = round((server_cpu_seconds(served.pid) - before) / 2, 3)
        report["runs"] = asyncio.run(
            measure_clients(
                served,
                images,
                clients=clients,
                modes=modes,
                burst=burst,
                rate=rate,
                duration=duration,
                rate_clients=rate_clients,
                rounds=rounds,
                api=api,
                inputs=[language, ""],
                timeout=timeout,
                processes=processes,
            )
        )
        tls = ssl.create_default_context()
        after = asyncio.run(HttpxUser(served.url, api, [language, ""], tls, timeout).user(images[0][1], images[0][0]))
        report["afterwards"] = {"answer": after[0], "detail": after[1]}
    report["load_average_after"] = round(os.getloadavg()[0], 2)
    report["targets"] = TARGETS
    return report


# What the Space is held to on a 2-core machine (the results page shows them beside the figures).
TARGETS = {
    "burst": {"errors": 0, "p95_s": 1.0, "server_cpu_ms_per_request": 8.0},
    "gradio_client_p95_over_httpx": 1.5,
    "rate": {"errors": 0, "p95_s": 0.5},
}


def failed(report: dict) -> bool:
    return any(run["errors"] for run in report["runs"]) or report["afterwards"]["answer"] != "ok"


def print_run(run: dict) -> None:
    lat = run["latency_s"]
    print(
        f"  {run['client']:>13} {run['images']:>8} {run['load']:>16}: {run['ok']}/{run['requests']} answered, "
        f"{run['errors']} errors {run['error_kinds'] or ''}| p50 {lat['p50']} s, p95 {lat['p95']} s, "
        f"p99 {lat['p99']} s | {run['throughput_rps']}/s | server CPU {run['server_cpu_ms_per_request']} ms/request"
        f" | client CPU {run['client_cpu_ms_per_request']} ms/request",
        file=sys.stderr,
        flush=True,
    )


def floor_burst(port: int, pid: int, images: list[tuple[str, bytes]], n: int, timeout: float = 120) -> dict:
    """`n` distinct uploads at once from the floor client (memory.py's crowd)."""
    user = FloorUser(port, "predict", ["fr", ""]).user
    return asyncio.run(run_load(user, pid, uploads_for(images, n, "distinct"), burst_starts(n), timeout))
