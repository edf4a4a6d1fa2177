"""The results pages: every benchmark's last measurement, kept as JSON, rendered as recipes/polydigits/README.md
(and, for the PolyObjects benchmarks, recipes/polyobjects/README.md).

`scripts/benchmark.py … --markdown` and `scripts/benchmark_space.py … --markdown` call `record`: the result is
stored in recipes/polydigits/results/<kind>.json with the command that produced it, and the page is written
anew from every stored result. `python scripts/benchmark.py page` re-renders it without measuring anything.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "recipes" / "polydigits" / "results"
PAGE = REPO / "recipes" / "polydigits" / "README.md"
OBJECTS_RESULTS = REPO / "recipes" / "polyobjects" / "results"
OBJECTS_PAGE = REPO / "recipes" / "polyobjects" / "README.md"
OBJECTS_KINDS = ("polyobjects",)
ORDER = (
    "quickstart",
    "generalization",
    "refusal",
    "synthesis",
    "transfer",
    "adaptation",
    "train",
    "cache",
    "prepare",
    "align",
    "space",
    "memory",
)


def _shown(command: str) -> str:
    """The command as a reader would rerun it: where a JSON copy of the result went (`--output`) and the note,
    printed under the figures, are left out."""
    words, shown = shlex.split(command), []
    for word in words:
        if shown and shown[-1] in ("--output", "--note"):
            shown.pop()
        elif not word.startswith(("--output=", "--note=")):
            shown.append(word)
    return shlex.join(shown)


def record(kind: str, result: dict, command: list[str] | None = None, page: Path = PAGE) -> Path:
    """Store `result` as the latest `kind` measurement, with its command and machine, and re-render the page."""
    results = OBJECTS_RESULTS if kind in OBJECTS_KINDS else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    command = command if command is not None else ["python", *sys.argv]
    entry = {
        "kind": kind,
        "command": shlex.join(command),
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.platform()}",
        "result": result,
    }
    (results / f"{kind}.json").write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return render_polyobjects() if kind in OBJECTS_KINDS else render(page)


def _pct(value) -> str:
    return f"{value * 100:.2f} %" if isinstance(value, (int, float)) else "–"


def _table(header, rows) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _worst(test: dict, column: str) -> str:
    """The script or language whose accuracy is the worst one (the metric gives the accuracy, not the name)."""
    per = test.get(f"per_{column}") or {}
    return min(per, key=lambda k: per[k]["accuracy"]) if per else "–"


def _quickstart(r: dict) -> list[str]:
    test = r["test"]
    lines = _table(
        ["metric", "value"],
        [
            ("accuracy", _pct(test["accuracy"])),
            ("macro-F1", f"{test['macro_f1']:.4f}"),
            ("expected calibration error (15 bins)", f"{test.get('expected_calibration_error', float('nan')):.4f}"),
            ("worst script", f"{_worst(test, 'script')} {_pct(test.get('worst_script_accuracy'))}"),
            ("worst language", f"{_worst(test, 'language')} {_pct(test.get('worst_language_accuracy'))}"),
            ("test images", test["n"]),
            ("training time (Trainer's train_runtime)", f"{r.get('train_runtime', float('nan')):.0f} s"),
        ],
    )
    for column in ("script", "language"):
        per = test.get(f"per_{column}") or {}
        lines += [
            "",
            *_table([column, "accuracy", "images"], [(k, _pct(v["accuracy"]), v["n"]) for k, v in per.items()]),
        ]
    return lines


def _generalization(r: dict) -> list[str]:
    lines = []
    for key, value in r.items():
        if isinstance(value, (int, float)) and "accuracy" in key:
            lines.append(f"- {key.replace('_', ' ')}: **{_pct(value)}**")
        elif isinstance(value, str) and key.endswith(("system", "framing", "hint")) and key != "model":
            lines.append(f"- {key.replace('_', ' ')}: {value}")

    def confused(row):
        return ", ".join(f"{k} ×{v}" for k, v in row.get("top_confusions", {}).items())

    systems = [
        (
            name,
            row["script"],
            ", ".join(row.get("held_out_publishers", [])) if row["held_out_families"] else "none (one publisher)",
            _pct(row["accuracy"]),
            _pct(row.get("accuracy_script_hint")),
            _pct(row.get("accuracy_top2")),
            row["n"],
            confused(row),
        )
        for name, row in r.get("per_system", {}).items()
    ]
    framings = [
        (
            name,
            _pct(row["accuracy"]),
            _pct(row.get("accuracy_script_hint")),
            _pct(row.get("accuracy_top2")),
            row["n"],
            confused(row),
        )
        for name, row in r.get("handwriting_per_framing", {}).items()
    ]
    header = ["no hint", "script given", "top-2", "images", "most confused (true→predicted)"]
    return (
        lines
        + ["", *_table(["system", "script", "held-out publishers", *header], systems)]
        + ["", *_table(["handwriting framing", *header], framings)]
    )


def _train(r: dict) -> list[str]:
    rows = [(key, f"{row['images_per_second']:,.0f}", row["what"]) for key, row in r["results"].items()]
    ratios = ", ".join(f"{k} = {v:.2f}" for k, v in r["ratios"].items() if "median" not in k)
    return [*_table(["measurement", "images/s", "what"], rows), "", f"Ratios (best rounds): {ratios}."]


def _cache(r: dict) -> list[str]:
    ips = r["training_images_per_second"]
    cache, scale = r["cache"], r["estimate_at_scale"]
    rows = [
        (row["what"], f"{row['best']:,.0f}", ", ".join(f"{v:,.0f}" for v in row["rounds"])) for row in ips.values()
    ]
    ratio = r["on_the_fly_over_cached"]
    loaders = r["loader_images_per_second"]
    return [
        f"{r['model']} at {r['input_size']} px, batch {r['batch_size']}, {r['train_images']:,} images, "
        f"{r['timed_steps']} timed steps, {r['dataloader_num_workers']} loader workers; images/s by the median step.",
        "",
        *_table(["training from", "images/s (best round)", "rounds"], rows),
        "",
        f"- Decoding on the fly / the cache: **{ratio['median_of_rounds']:.2f}** (median of rounds; "
        + ", ".join(f"{v:.2f}" for v in ratio["rounds"])
        + f"). The loaders alone: cache {loaders['cached']:,.0f} images/s, on the fly {loaders['on_the_fly']:,.0f};"
        f" a step from the cache plus the decoding of one batch gives {ratio['from_the_decoding_cost']:.2f}.",
        f"- Decoding on the fly by one loader worker (`dataloader_num_workers: 1`) / the cache: "
        f"**{r['on_the_fly_worker_over_cached']['median_of_rounds']:.2f}** (median of rounds; "
        + ", ".join(f"{v:.2f}" for v in r["on_the_fly_worker_over_cached"]["rounds"])
        + ").",
        f"- The cache on disk: {cache['bytes_on_disk'] / 1e6:.1f} MB ({cache['bytes_per_image']:,.0f} bytes an "
        f"image); the estimate `prepare` and `train` check against the free room: "
        f"{cache['estimated_bytes'] / 1e6:.1f} MB ({cache['estimate_error']:+.1%}).",
        f"- At scale: {scale['images']:,} images at {scale['input_size']} px (about recipes/mnist-mix) need "
        f"**{scale['gigabytes']:.1f} GB** of cache; without room, `pixel_cache: false` needs none.",
    ]


def _prepare(r: dict) -> list[str]:
    return [
        f"- `prepare` with `save_to_disk`: **{r['prepare_images_per_second']:,.0f} images/s** "
        f"({r['images']:,} PNGs of {r['image_size']} px in {r['sources']} sources, "
        f"{r['duplicates_removed']} duplicates removed); unifying alone: {r['unify_images_per_second']:,.0f} images/s"
    ]


CLIENT_NOTES = {
    "httpx": "httpx, Gradio's plain HTTP API (upload, /call, event stream)",
    "browser": "the page's own sequence (upload with progress, queue/join, queue/data)",
    "gradio_client": "`gradio_client.Client.predict`",
    "floor": "floor: a raw-socket client that costs nearly nothing",
}


def _space(r: dict) -> list[str]:
    runs = r.get("runs") or []
    targets = r.get("targets") or {}
    burst, rate = targets.get("burst", {}), targets.get("rate", {})

    def meets(run: dict) -> str:
        target = rate if "/s for" in run["load"] else burst if run["client"] == "httpx" else {}
        if not target:
            return ""
        p95 = run["latency_s"].get("p95")
        ok = run["errors"] <= target["errors"] and p95 is not None and p95 <= target["p95_s"]
        if "server_cpu_ms_per_request" in target:
            ok = ok and run["server_cpu_ms_per_request"] <= target["server_cpu_ms_per_request"]
        return "yes" if ok else "**no**"

    rows = [
        (
            CLIENT_NOTES.get(run["client"], run["client"]),
            run["images"],
            run["load"],
            f"{run['ok']}/{run['requests']}",
            run["errors"],
            run["latency_s"].get("p50"),
            run["latency_s"].get("p95"),
            run["latency_s"].get("p99"),
            run["throughput_rps"],
            run["server_cpu_ms_per_request"],
            run["client_cpu_ms_per_request"],
            meets(run),
        )
        for run in runs
    ]
    lines = [
        f"Model `{r.get('model')}`, served by `polyglot-vision demo` in a process of its own; the machine's 1-minute "
        f"load average was {r.get('load_average_before')} before and {r.get('load_average_after')} after (with "
        f"{r.get('cpu_count')} cores, anything above {r.get('cpu_count')} is other work competing with the server "
        "and the load generator, which share the machine). Each user brings its own client and connection; `same`: "
        "one image for every user, `distinct`: a different upload for each. Burst: all users at the same instant, "
        "the median of the rounds by p95 shown; n/s: request i sent at i/n s (open loop). Latency from upload to "
        "answer; server CPU from /proc, all threads of the server process; client CPU: the load generator's own.",
        "",
    ]
    lines += _table(
        [
            "client",
            "images",
            "load",
            "answered",
            "errors",
            "p50 s",
            "p95 s",
            "p99 s",
            "answers/s",
            "server CPU ms/request",
            "client CPU ms/request",
            "meets target",
        ],
        rows,
    )
    if burst:
        lines += [
            "",
            f"Targets: a burst from httpx with {burst['errors']} errors, p95 ≤ {burst['p95_s']} s and "
            f"≤ {burst['server_cpu_ms_per_request']:g} ms of server CPU a request; gradio_client's p95 within "
            f"{targets.get('gradio_client_p95_over_httpx')}× of httpx's; the sustained load with {rate.get('errors')} "
            f"errors and p95 ≤ {rate.get('p95_s')} s.",
        ]
        by_key = {(run["client"], run["images"], run["load"]): run for run in runs}
        ratios = []
        for (client, images, load), run in by_key.items():
            httpx = by_key.get(("httpx", images, load))
            if client == "gradio_client" and httpx and httpx["latency_s"].get("p95"):
                ratio = run["latency_s"]["p95"] / httpx["latency_s"]["p95"]
                ratios.append(f"{images} images {ratio:.2f}×")
        if ratios:
            lines[-1] += " gradio_client's p95 over httpx's: " + ", ".join(ratios) + "."
        spreads = [
            f"{run['images']} images p95 {min(run['p95_of_rounds_s'])}–{max(run['p95_of_rounds_s'])} s, server CPU "
            f"{min(run['server_cpu_ms_of_rounds'])}–{max(run['server_cpu_ms_of_rounds'])} ms a request"
            for run in runs
            if run["client"] == "httpx" and run.get("p95_of_rounds_s")  # a burst of several rounds
        ]
        if spreads:
            rounds = max(run.get("rounds", 1) for run in runs)
            lines[-1] += f" httpx's bursts from round to round ({rounds} rounds): " + "; ".join(spreads) + "."
    return lines


def _memory(r: dict) -> list[str]:
    predict, space = r["predict"], r["space"]
    small, big = predict["one_small_image"], predict["big_images"]
    crowd, burst = space["big_uploads"], space["ordinary_burst"]

    def latency(run: dict) -> str:
        lat = run.get("latency_s", {})
        return f"{run.get('ok')}/{run.get('requests')} answered, p50 {lat.get('p50')} s, p95 {lat.get('p95')} s"

    lines = [
        f"Model `{r['model']}`" + (f" ({r['model_note']})" if r.get("model_note") else "") + ". Images: 1-bit PNGs "
        f"of {predict['megapixels_each']} megapixels ({predict['bytes_each'] / 1000:.1f} kB on disk, 119 MB as RGB). "
        "Peak resident set of the whole command (the kernel's accounting of the child); the Space's resident set "
        f"sampled from /proc every 0.1 s. Load average {r.get('load_average_before')} before, "
        f"{r.get('load_average_after')} after ({r.get('cpu_count')} cores).",
        "",
    ]
    lines += _table(
        ["measurement", "value", "target"],
        [
            ("`predict` on one small image: peak RSS", f"{small['peak_rss_mb']} MB", ""),
            (
                f"`predict` on {predict['images']} PNGs of 40 MP: peak RSS",
                f"{big['peak_rss_mb']} MB ({big['seconds']} s, exit {big['exit_status']})",
                "under 1,500 MB",
            ),
            ("the Space, idle after a warm-up: RSS", f"{space['rss_idle_mb']} MB", ""),
            (
                f"the Space answering {space['uploads_at_once']} such uploads at once: peak RSS",
                f"{space['rss_peak_mb']} MB ({latency(crowd)})",
                "under 2,000 MB",
            ),
            (
                "the Space a minute after: RSS",
                f"{space['rss_after_a_minute_mb']} MB (under 1 GB after {space['seconds_until_under_1_gb']} s)",
                "under 1,000 MB",
            ),
            (
                f"a burst of {burst.get('requests')} ordinary uploads, before the big ones / after them",
                f"{latency(space.get('ordinary_burst_before', {}))} / {latency(burst)}",
                "as fast as before",
            ),
            (
                "uploads in the cache: while serving / after the server stopped",
                f"{space['uploads_cached_while_serving']} / {space['uploads_cached_after_stop']}",
                "0 after it stopped",
            ),
        ],
    )
    return lines


def _markdown_file(r: dict) -> list[str]:
    return [r.get("markdown", "").replace("\n# ", "\n### ").strip()]


RENDER = {
    "quickstart": ("Quickstart: test split", _quickstart),
    "generalization": ("What the model never saw: held-out typefaces and handwriting", _generalization),
    "refusal": ("What the model refuses: strangers, and numerals it should read", _markdown_file),
    "synthesis": ("What each ingredient of the synthetic training data is worth", _markdown_file),
    "transfer": ("Which language teaches which", _markdown_file),
    "adaptation": ("Few-shot adaptation to an unseen script", _markdown_file),
    "train": ("Training throughput", _train),
    "cache": ("The pixel cache or decoding on the fly (`pixel_cache: false`)", _cache),
    "prepare": ("Unifying sources (`prepare`)", _prepare),
    "align": (
        "Label alignment: emoji designs labelled in their own languages, text only and with image votes",
        _markdown_file,
    ),
    "space": ("The Space under load", _space),
    "memory": ("Memory: 40-megapixel images in `predict` and the Space", _memory),
}


def render(page: Path = PAGE) -> Path:
    entries = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS.glob("*.json"))}
    lines = [
        "# PolyDigits: results",
        "",
        "Written by `scripts/benchmark.py` (and `scripts/benchmark_space.py`) with `--markdown`, from the",
        "measurements kept in `results/`; each section gives the command that produced its numbers, when and on",
        "what machine. Re-render without measuring: `python scripts/benchmark.py page`.",
    ]
    for kind in sorted(entries, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
        entry = entries[kind]
        title, renderer = RENDER.get(kind, (kind, lambda r: ["```json", json.dumps(r, indent=2), "```"]))
        lines += [
            "",
            f"## {title}",
            "",
            f"`{_shown(entry['command'])}` — {entry['measured']}, {entry['machine']}",
            "",
            *renderer(entry["result"]),
        ]
        if entry["result"].get("note"):
            lines += ["", f"Note: {entry['result']['note']}"]
    missing = [RENDER[k][0] for k in ORDER if k not in entries]
    if missing:
        lines += ["", "Not measured yet with the current code: " + "; ".join(missing) + "."]
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return page


def render_polyobjects(page: Path = OBJECTS_PAGE) -> Path:
    """recipes/polyobjects/README.md: the recipes, and the yardstick of held-out designs."""
    from polyglot_vision.experiments.held_out_designs import markdown

    lines = [
        "# PolyObjects: recipes and results",
        "",
        "Things people photograph (animals, plants, food, vehicles, places, tools, household objects, clothing),",
        "drawn by twelve emoji design teams and labelled, one design to one language, with the Unicode CLDR names:",
        "`polyglot-vision fetch && polyglot-vision polyobjects data/polyobjects`. The recipes here train on nine",
        "designs; three (twemoji, and Google's noto and noto-v1: whole lineages) are never trained on and are the",
        "yardstick. Every source is mapped by the registry's CLDR names in its own language; the alignment of",
        "words the registry does not know (text embeddings and image votes) is the align benchmark's business.",
        "",
        "| recipe | model | where |",
        "|---|---|---|",
        "| `quickstart.yaml` | ResNet from a config, 32 px | a CPU in 13 minutes (`make polyobjects`) |",
        "| `convnext.yaml` | ConvNeXt from a config, 48 px | CPU (slower) or GPU |",
        "| `vit.yaml` | ViT from a config, 48 px | CPU (slower) or GPU |",
        "| `vit-base.yaml` | `google/vit-base-patch16-224-in21k`, 224 px | GPU and the Hub (not run here) |",
        "",
        "Written by `scripts/benchmark.py polyobjects MODEL --markdown` from `results/`; re-render without",
        "measuring: `python scripts/benchmark.py page`.",
    ]
    entries = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(OBJECTS_RESULTS.glob("*.json"))}
    for entry in entries.values():
        result = entry["result"]
        measured = f"`{_shown(entry['command'])}` — {entry['measured']}, {entry['machine']}"
        lines += ["", "## Held-out designs", "", measured]
        if result.get("train_seconds") is not None:
            lines[-1] += f"; the model trained in {result['train_seconds'] / 60:.1f} minutes"
        lines += ["", *markdown(result)]
        if result.get("note"):
            lines += ["", f"Note: {result['note']}"]
    if not entries:
        lines += ["", "Not measured yet with the current code."]
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return page
