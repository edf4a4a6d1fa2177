"""The Space under a crowd, from every client users bring (polyglot_vision.experiments.space_load).

Usage:
    python scripts/benchmark_space.py outputs/polydigits/quickstart --markdown      # record it on the results page
    python scripts/benchmark_space.py MODEL --clients httpx --images distinct --burst 100 --rate 0   # one quick run
    python scripts/benchmark_space.py MODEL --rate 50 --duration 60 --rate-clients httpx browser    # sustained load

Each client (`httpx`, `browser`, `gradio_client`, and `floor`, a nearly free raw-socket client) sends a burst of
users at once, with the same image and with a distinct image per user, `--rounds` times (the median round by p95
is kept); the `--rate-clients` then send `--rate` requests a second for `--duration` seconds (open loop). Exit
status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from polyglot_vision.experiments.space_load import CLIENTS, IMAGES, failed, measure_space

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--images", nargs="+", choices=IMAGES, default=list(IMAGES), help="same and/or distinct")
    parser.add_argument("--burst", type=int, default=100, help="users at once")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per client and image mode (median kept)")
    parser.add_argument("--rate", type=float, default=50, help="sustained requests/s (0: none)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of the sustained load")
    parser.add_argument("--rate-clients", nargs="+", choices=CLIENTS, default=["httpx"])
    parser.add_argument("--api", default="predict", help="api_name of the endpoint")
    parser.add_argument("--language", default="fr")
    parser.add_argument("--examples", default=str(REPO / "space" / "examples"), help="folder of PNG images to send")
    parser.add_argument("--timeout", type=float, default=30, help="seconds allowed per request")
    parser.add_argument("--processes", type=int, default=4, help="processes sending the asyncio clients' users")
    parser.add_argument("--output", help="also write the JSON report here")
    parser.add_argument("--markdown", action="store_true", help="record the result on the results page")
    args = parser.parse_args(argv)
    if not 1 <= args.burst <= 1000 or not 0 <= args.rate * args.duration <= 5000 or args.rounds < 1:
        parser.error("keep runs bounded: bursts of 1..1000 users, at most 5000 sustained requests, 1+ rounds")

    report = measure_space(
        args.model,
        args.examples,
        clients=tuple(args.clients),
        modes=tuple(args.images),
        burst=args.burst,
        rate=args.rate,
        duration=args.duration,
        rate_clients=tuple(args.rate_clients),
        rounds=args.rounds,
        api=args.api,
        language=args.language,
        timeout=args.timeout,
        processes=args.processes,
    )
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    if args.markdown:
        from results_page import record

        print(f"results page: {record('space', report)}", file=sys.stderr)
    return 1 if failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
