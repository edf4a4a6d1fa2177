"""Load benchmark of the demo/Space: concurrent gradio_client requests against the app on 127.0.0.1.

    python scripts/benchmark_space.py outputs/polydigits/quickstart --requests 100 --threads 100

Launches the app in this process on the loopback interface only (a free port), waits for it, then sends
`--requests` predictions of the example images from `--threads` threads through gradio_client, each
bounded by `--timeout` seconds (and the whole run by `--deadline`). Prints one JSON object: counts,
errors and latency percentiles (seconds, from submit to result, queueing included).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("--requests", type=int, default=100, help="total predictions (at most 1000)")
    parser.add_argument("--threads", type=int, default=100, help="concurrent client threads (at most 200)")
    parser.add_argument("--language", default="fr")
    parser.add_argument("--concurrency-limit", type=int, default=None, help="the app's model calls at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per request")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds allowed for the whole run")
    parser.add_argument("--examples", default=str(REPO / "space" / "examples"))
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 1000 or not 1 <= args.threads <= 200:
        parser.error("--requests must be 1..1000 and --threads 1..200")

    from gradio_client import Client, handle_file

    from polyglot_vision.serving import Predictor
    from polyglot_vision.serving import demo as demo_module

    images = sorted(Path(args.examples).glob("*.png"))
    if not images:
        parser.error(f"no PNG images in {args.examples}")
    with socket.socket() as sock:  # a free port on the loopback interface
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    started = time.perf_counter()
    predictor = Predictor.from_pretrained(args.model)
    limit = args.concurrency_limit or demo_module.CONCURRENCY_LIMIT
    app = demo_module.launch(
        predictor,
        host="127.0.0.1",
        port=port,
        block=False,
        quiet=True,
        concurrency_limit=limit,
        max_queue=max(demo_module.MAX_QUEUE, args.requests),
    )
    startup_s = time.perf_counter() - started
    client = Client(app.local_url, verbose=False)
    client.predict(handle_file(str(images[0])), args.language, "", api_name="/predict")  # warm-up

    def one(i: int) -> float:
        t0 = time.perf_counter()
        job = client.submit(handle_file(str(images[i % len(images)])), args.language, "", api_name="/predict")
        label, _note = job.result(timeout=args.timeout)
        if not label or not label.get("confidences"):
            raise RuntimeError("empty answer")
        return time.perf_counter() - t0

    latencies: list[float] = []
    errors: dict[str, int] = {}
    t_start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=args.threads)
    futures = [pool.submit(one, i) for i in range(args.requests)]
    try:
        for future in as_completed(futures, timeout=args.deadline):
            try:
                latencies.append(future.result())
            except Exception as err:  # counted, never fatal
                key = f"{type(err).__name__}: {str(err)[:120]}"
                errors[key] = errors.get(key, 0) + 1
    except TimeoutError:
        errors["deadline exceeded"] = sum(not f.done() for f in futures)
    wall = time.perf_counter() - t_start
    pool.shutdown(wait=False, cancel_futures=True)
    app.close()

    report = {
        "model": str(args.model),
        "url": app.local_url,
        "requests": args.requests,
        "threads": args.threads,
        "concurrency_limit": limit,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "startup_s": round(startup_s, 2),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2) if wall else None,
        "latency_s": {
            "p50": round(percentile(latencies, 50), 3) if latencies else None,
            "p95": round(percentile(latencies, 95), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        },
        "cpu_count": os.cpu_count(),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
