"""Memory of reading large images: `predict` on many 40-megapixel PNGs, and the Space under a crowd of them.

    python scripts/benchmark.py memory outputs/polydigits/quickstart --markdown

A 1-bit PNG of 6,300 × 6,300 pixels is a few kB on disk and 119 MB as RGB. Measured here, each in a process
of its own, as the commands a user runs:

- `predict` on 20 such PNGs: the peak resident set of the command (the kernel's accounting of that child,
  `os.wait4`), beside `predict` on one small image;
- the Space (`polyglot-vision demo`) answering 16 such uploads sent at once: the server's resident set
  sampled from /proc while it answers (peak) and for a minute after (when it is back under 1 GB), and a
  burst of ordinary uploads (the examples) before and after them, with its latency; uploads left in its
  cache after it stops.

The HTTP load comes from the caller (`load(port, pid, images, n)` sends `n` requests at once and returns
answered, errors and latency), so that the Space's own load benchmark's client measures both.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from .served import free_port, wait_until_served

BIG_SIDE = 6300  # 39.7 megapixels, under the Space's 40 MP limit
MB = 1 << 20

Load = Callable[[int, int, list[tuple[str, bytes]], int], dict]


def big_pngs(folder: Path, n: int, side: int = BIG_SIDE, seed: int = 0) -> list[Path]:
    """`n` different 1-bit PNGs of `side` × `side` pixels: dark strokes on white, a few kB each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        image = Image.new("1", (side, side), 1)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = rng.randrange(side // 4, side * 3 // 4), rng.randrange(side // 4, side * 3 // 4)
            draw.line((x, side // 6, y, side * 5 // 6), fill=0, width=side // 25)
        paths.append(folder / f"big-{i:02d}.png")
        image.save(paths[-1], optimize=True)
    return paths


def run_with_peak(command: list[str], env: dict | None = None) -> dict:
    """Run a command; its exit status, seconds and peak resident set (MB) of it and the children it waited for."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-500:].decode(errors="replace")
    return {
        "exit_status": child.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(usage.ru_maxrss * 1024 / MB),
        **({"stderr_tail": tail} if child.returncode else {}),
    }


def predict_memory(model: str, big: list[Path], small: Path, env: dict) -> dict:
    """Peak RSS of `polyglot-vision predict` on one small image, then on every big one."""
    command = [sys.executable, "-m", "polyglot_vision.cli", "predict", model, "--top-k", "1"]
    return {
        "images": len(big),
        "megapixels_each": round(Image.open(big[0]).width * Image.open(big[0]).height / 1e6, 1),
        "bytes_each": big[0].stat().st_size,
        "one_small_image": run_with_peak([*command, str(small)], env),
        "big_images": run_with_peak([*command, *map(str, big)], env),
    }


class RssWatch:
    """Samples a process's resident set from /proc every `every` seconds in a thread: (seconds, MB) pairs."""

    def __init__(self, pid: int, every: float = 0.1):
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter() - self.started, self.rss_mb()))
            except OSError:
                return
            self._stop.wait(self.every)

    def peak_between(self, start: float, end: float) -> float:
        return max((mb for t, mb in self.samples if start <= t <= end), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def space_memory(
    model: str, big: list[Path], ordinary: list[Path], load: Load, env: dict, burst: int = 100, settle: float = 60
) -> dict:
    """The Space's resident set answering the big uploads at once, a minute after, and a burst of ordinary ones."""
    port = free_port()
    big_images = [(path.name, path.read_bytes()) for path in big]
    ordinary_images = [(path.name, path.read_bytes()) for path in ordinary]
    with tempfile.TemporaryDirectory(prefix="pv-memory-uploads-") as uploads:
        env = dict(env, GRADIO_TEMP_DIR=uploads)
        command = [sys.executable, "-m", "polyglot_vision.cli", "demo", model, "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_served(server, port)
            load(port, server.pid, ordinary_images, 4)  # warm: the model and the code paths
            ordinary_before = load(port, server.pid, ordinary_images, burst)
            watch = RssWatch(server.pid)
            time.sleep(1)
            idle = watch.rss_mb()
            began = time.perf_counter() - watch.started
            crowd = load(port, server.pid, big_images, len(big_images))
            answered = time.perf_counter() - watch.started
            back_under_1gb = None
            while time.perf_counter() - watch.started < answered + settle:
                if back_under_1gb is None and watch.samples and watch.samples[-1][1] < 1024:
                    back_under_1gb = round(max(0.0, watch.samples[-1][0] - answered), 1)
                time.sleep(0.5)
            after = watch.rss_mb()
            peak = watch.peak_between(began, answered + settle)
            watch.stop()
            ordinary_run = load(port, server.pid, ordinary_images, burst)
            cached_while_serving = sum(len(files) for _, _, files in os.walk(uploads))
        finally:
            server.send_signal(signal.SIGINT)  # as Ctrl-C: the demo closes and empties its upload cache
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        cached_after_stop = sum(len(files) for _, _, files in os.walk(uploads))
    return {
        "uploads_at_once": len(big),
        "rss_idle_mb": round(idle),
        "rss_peak_mb": round(peak),
        "rss_after_a_minute_mb": round(after),
        "seconds_until_under_1_gb": back_under_1gb,
        "big_uploads": _summary(crowd),
        "ordinary_burst_before": _summary(ordinary_before),
        "ordinary_burst": _summary(ordinary_run),
        "uploads_cached_while_serving": cached_while_serving,
        "uploads_cached_after_stop": cached_after_stop,
    }


def _summary(run: dict) -> dict:
    keys = ("requests", "ok", "errors", "error_kinds", "latency_s", "throughput_rps", "server_cpu_ms_per_request")
    return {key: run[key] for key in keys if key in run}


def measure_memory(
    model: str,
    load: Load,
    examples: Path,
    predict_images: int = 20,
    space_uploads: int = 16,
    burst: int = 100,
    settle: float = 60,
) -> dict:
    """Every measurement of this module, on a model folder; `load` sends the Space its requests."""
    ordinary = sorted(Path(examples).glob("*.png"))
    if not ordinary:
        raise FileNotFoundError(f"{examples}: no PNG images to send as ordinary uploads")
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    with tempfile.TemporaryDirectory(prefix="pv-memory-") as work:
        big = big_pngs(Path(work), max(predict_images, space_uploads))
        return {
            "model": model,
            "cpu_count": os.cpu_count(),
            "load_average_before": round(os.getloadavg()[0], 2),
            "predict": predict_memory(model, big[:predict_images], ordinary[0], env),
            "space": space_memory(model, big[:space_uploads], ordinary, load, env, burst, settle),
            "load_average_after": round(os.getloadavg()[0], 2),
        }
