"""`polyglot-vision`: one entry point, one subcommand per stage.

Errors a user can cause print one line naming the culprit and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from transformers.utils import logging as hf_logging

from .builtin_data import DEFAULT_SYNTHESIS, SYNTHESIS, generate_polydigits, generate_polyobjects
from .builtin_data.assets import cache_dir, fetch, load_lock
from .data import format_counts, load_and_align, read_paths, save_dataset, split_counts, unify
from .errors import UserError, printable
from .evaluation import evaluate_model, format_not_evaluated, format_table
from .experiments import adaptation_curve, transfer_matrix
from .export import check_repo_id, dataset_upload_plan, push_dataset, push_model, upload_plan, write_dataset_card
from .images import batches, check_image_file
from .labels import LabelSpace, is_valid_language
from .labels.alignment import REPORT_MD, review_document, write_report
from .labels.embeddings import describe as describe_text_evidence
from .labels.embeddings import load_backend
from .outputs import check_output_dir, check_output_file, output_lock, write_owned_json, write_text
from .paths import is_hub_id
from .serving import Predictor
from .training import check_cache_room, end_distributed, load_recipe, parse_overrides, train

QUICKSTART_MODEL = "outputs/polydigits/quickstart"
PREDICT_BATCH = 32  # images read and classified at a time
NAME_LIMIT = 200  # characters of a file name or label shown in a line of text
LOG_LIMIT = 2000  # characters of a log message


class _PrintableLogs(logging.Formatter):
    """Log lines with the names in them made safe to print (tracebacks, if any, stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable(super().formatMessage(record), limit=LOG_LIMIT)


class _PrintableOutput:
    """sys.stdout for the length of a command: what it prints (tables of labels, names of files and sources,
    JSON) reaches the terminal with control characters escaped; line ends and tabs are kept."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, limit=None, keep="\n\t"))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        super().error(printable(message))


def _quiet_libraries() -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    root = logging.getLogger()
    if not root.handlers:  # what logging.basicConfig does, with names in messages made safe to print
        handler = logging.StreamHandler()
        handler.setFormatter(_PrintableLogs("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    logging.getLogger("polyglot_vision").setLevel(logging.INFO)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cmd_polydigits(args, extra) -> int:
    sources = generate_polydigits(
        args.out, per_class=args.per_class, seed=args.seed, image_size=args.image_size, synthesis=args.synthesis
    )
    total = sum(s.get("num_images", 0) for s in sources)
    print(f"Wrote {len(sources)} sources{f' ({total} images)' if total else ''} to {args.out}")
    return 0


def cmd_polyobjects(args, extra) -> int:
    sources = generate_polyobjects(
        args.out, per_class=args.per_class, seed=args.seed, image_size=args.image_size, designs=args.designs
    )
    print(f"Wrote {len(sources)} sources (one per emoji design) to {args.out}")
    return 0


def cmd_fetch(args, extra) -> int:
    fetched = fetch(args.only or None, verify=args.verify)
    wanted = [p for p in load_lock().values() if not args.only or p.purpose in args.only]
    print(f"{len(wanted)} pinned npm packages verified in {cache_dir()} ({len(fetched)} fetched now)")
    return 0


def cmd_prepare(args, extra) -> int:
    recipe = load_recipe(args.recipe, extra)
    out = Path(args.output or recipe.data.dataset_dir or str(Path(recipe.training.output_dir) / "dataset"))
    check_output_dir(out, overwrite=args.overwrite, sources=read_paths(recipe.data), what="dataset folder")
    with output_lock(out, what="dataset folder"):  # one writer from the first source read to the push
        return _prepare(args, recipe, out)


def _prepare(args, recipe, out: Path) -> int:
    if recipe.data.streaming:
        raise UserError(
            f"recipe {args.recipe}: `prepare` saves a dataset to disk; with `streaming: true` "
            "the sources are read while training (polyglot-vision train)"
        )
    if args.push_to_hub:
        check_repo_id(args.push_to_hub)
    sources = read_paths(recipe.data)  # the folders a manifest's rows point into included
    check_output_dir(out, overwrite=args.overwrite, sources=sources, what="dataset folder")  # before the long work
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    unified = unify(recipe.data, label_space)
    check_cache_room(recipe, unified.dataset)  # the pixel cache `train` would write, before this writes anything
    name = args.push_to_hub or out.name

    def write_extras(folder: Path) -> None:
        write_report(folder, unified.report)
        write_dataset_card(folder, unified.report, label_space, name)

    save_dataset(unified.dataset, out, extra=write_extras, overwrite=args.overwrite, sources=sources)
    print(format_counts(unified.report))
    for split, counts in split_counts(unified.dataset).items():
        print(f"{split:<10} {sum(counts.values()):>6} images  " + "  ".join(f"{s}={n}" for s, n in counts.items()))
    bad = {s: row["bad_images"] for s, row in unified.report["sources"].items() if row["bad_images"]}
    if bad:
        print("bad images skipped: " + "  ".join(f"{s}={n}" for s, n in bad.items()))
    print(f"duplicates removed: {unified.report['duplicates']['removed']}")
    print(f"Unified dataset saved to {out} (report: {out / REPORT_MD})")
    if args.push_to_hub:
        if args.dry_run:
            files = dataset_upload_plan(out)
            for line in files:
                print(line)
            print(
                f"{len(files)} files would be pushed to the dataset repository {args.push_to_hub}"
                f"{' (private)' if args.private else ''}"
            )
        else:
            print(f"Pushed to {push_dataset(out, args.push_to_hub, private=args.private or None)}")
    return 0


def cmd_align(args, extra) -> int:
    recipe = load_recipe(args.recipe, extra)
    out = Path(args.output) if args.output else Path(args.recipe).with_name("alignment.yaml")
    carried = recipe.data.alignment_file and Path(recipe.data.alignment_file).resolve() == out.resolve()
    if out.is_dir():
        raise UserError(f"--output {out}: is a folder; give a file name such as alignment.yaml")
    if out.exists() and not carried and not args.overwrite:
        raise UserError(
            f"{out} exists and the recipe does not read it (`alignment_file:`), so its edits would be lost; "
            "name it in the recipe, choose another --output, or pass --overwrite"
        )
    label_space = LabelSpace.from_yaml(recipe.data.label_space)
    _, _, alignments = load_and_align(recipe.data, label_space, policy=False)
    backend = load_backend(recipe.data.label_embeddings)
    text = describe_text_evidence(backend) if backend is not None else None
    write_text(out, review_document(alignments, recipe.data, label_space, out, text))
    for name, alignment in alignments.items():
        counts = {status: 0 for status in ("accepted", "proposed", "unmapped")}
        for decision in alignment.decisions.values():
            counts[decision.status] += 1
        print(f"{name:<16} " + "  ".join(f"{status} {n}" for status, n in counts.items()))
    print(f"Alignment written to {out}; review it, then set `alignment_file: {out}` in the recipe")
    return 0


def cmd_train(args, extra) -> int:
    try:
        train(load_recipe(args.recipe, extra))
    finally:
        end_distributed()
    return 0


def cmd_evaluate(args, extra) -> int:
    recipe = load_recipe(args.recipe, extra)
    if args.output and Path(args.output).is_dir():
        raise UserError(
            f"--output {args.output}: is a folder; give a JSON file name (the report folder is --output-dir)"
        )
    if args.output:  # before the long work: a file the tool did not write is never replaced without --overwrite
        check_output_file(args.output, overwrite=args.overwrite)
    predictor = Predictor.from_pretrained(args.model)
    metrics, out = evaluate_model(
        predictor.model,
        predictor.processor,
        recipe,
        args.split,
        args.output_dir,
        model_name=args.model,
        overwrite=args.overwrite,
    )
    print(format_table(metrics, title=args.split))
    if metrics.get("not_evaluated"):
        print(format_not_evaluated(metrics["not_evaluated"], args.split))
    if args.output:
        write_owned_json(args.output, {args.split: metrics}, overwrite=args.overwrite)
    print(f"\nReport, metrics and plots written to {out}")
    return 0


def cmd_transfer(args, extra) -> int:
    result = transfer_matrix(
        args.recipe,
        parse_overrides(extra),
        steps=args.steps,
        leave_one_out=args.leave_one_out,
        output_dir=args.output_dir,
    )
    print(Path(result["output_dir"], "transfer.md").read_text(encoding="utf-8"))
    print(f"Transfer matrix written to {result['output_dir']}")
    return 0


def cmd_adapt(args, extra) -> int:
    result = adaptation_curve(args.recipe, parse_overrides(extra), output_dir=args.output_dir)
    print(Path(result["output_dir"], "adaptation.md").read_text(encoding="utf-8"))
    print(f"Adaptation curve written to {result['output_dir']}")
    return 0


def cmd_predict(args, extra) -> int:
    if args.top_k < 1:
        raise UserError(f"--top-k must be 1 or more, got {args.top_k}")
    if args.lang is not None and not is_valid_language(args.lang):
        raise UserError(f"--lang {args.lang!r} is not a language tag (e.g. fr, pt-BR, zh-Hant)")
    for path in args.images:  # a missing, special or oversized file fails before the model loads
        check_image_file(path)
    predictor = Predictor.from_pretrained(args.model)
    args.lang, args.hint = predictor.read_hint(args.hint, args.lang)  # a bad hint fails before anything is printed
    if args.lang is not None and predictor.label_space.answer_language(args.lang) is None:
        print(
            f"polyglot-vision: note: this model has no names in {args.lang!r} "
            f"(it has {', '.join(predictor.languages)}); "
            f"answering in {predictor.default_language!r}",
            file=sys.stderr,
        )
    # Read, classify and print a bounded batch at a time: memory stays that of one batch however many files.
    decoded = ((path, predictor.read(path)) for path in args.images)
    shown = 0
    if args.json:
        print("[")
    for batch in batches(decoded, PREDICT_BATCH, pixels=lambda item: item[1].width * item[1].height):
        results = predictor.top_k([image for _, image in batch], k=args.top_k, language=args.lang, hint=args.hint)
        for (path, _), answer in zip(batch, results):
            if args.json:
                item = {"image": path, **answer.to_dict()}
                text = json.dumps(item, ensure_ascii=False, indent=2).replace("\n", "\n  ")
                print(("  " if not shown else ",\n  ") + text, end="")
            else:
                print(f"{printable(path, NAME_LIMIT)}: {answer_line(answer)}", flush=True)
            shown += 1
        del batch, results  # else this batch stays alive while the next one is read
    if args.json:
        print("\n]")
    return 0


def answer_line(answer) -> str:
    """One image's answer on one line: refused with its reason, or the top-k (led by both twins, without a hint)."""
    if answer.refused:
        return f"refused: {printable(answer.reason, 4 * NAME_LIMIT)}"
    ranked = "   ".join(
        f"{printable(p.name, NAME_LIMIT)} ({printable(p.concept, NAME_LIMIT)})"
        f"{f' · {p.script_name}' if p.script_name else ''} {p.score:.1%}"
        for p in answer
    )
    twins = printable(answer.text, 4 * NAME_LIMIT)
    return f"{twins}, these scripts draw it alike (give --hint for one):   {ranked}" if answer.twin else ranked


def cmd_push(args, extra) -> int:
    model_dir = Path(args.model)
    check_repo_id(args.repo_id)
    plan = upload_plan(model_dir)
    files = [f for f in plan if f.upload]
    if args.dry_run:
        width = max(len(f.name) for f in plan)
        for f in plan:
            print(f"{'upload' if f.upload else 'skip':<7}{f.name:<{width}}  {f.reason}")
        print(f"{len(files)} files would be pushed to {args.repo_id}{' (private)' if args.private else ''}")
        return 0
    url = push_model(model_dir, args.repo_id, private=args.private or None)
    print(f"Pushed {len(files)} files to {url}")
    return 0


def cmd_demo(args, extra) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    model = args.model
    path = Path(model).expanduser()
    if not path.exists() and not is_hub_id(model):
        hint = (
            " (train it: polyglot-vision train recipes/polydigits/quickstart.yaml)"
            if model == QUICKSTART_MODEL
            else ""
        )
        raise UserError(f"model folder {model} not found{hint}")
    if path.exists() and not path.is_dir():
        raise UserError(f"model {model}: not a folder")
    if args.examples and not Path(args.examples).is_dir():
        raise UserError(f"--examples {args.examples}: not a folder")
    from .serving.demo import launch  # needs gradio, the `demo` extra

    predictor = Predictor.from_pretrained(str(path) if path.exists() else model)
    launch(predictor, host="127.0.0.1", port=args.port, examples_dir=args.examples)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="polyglot-vision",
        description="Fine-tune image classifiers on image sets labelled in many languages.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("polydigits", help="write the offline PolyDigits sources (numerals of 13 writing systems)")
    p.add_argument("out", help="output folder, e.g. data/polydigits")
    p.add_argument("--per-class", type=int, default=400, help="rendered images per digit and numeral system")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=48, help="side of the saved images in pixels")
    p.add_argument(
        "--synthesis",
        nargs="*",
        default=list(DEFAULT_SYNTHESIS),
        metavar="INGREDIENT",
        help=f"variations beyond the fonts' own glyphs, among {', '.join(SYNTHESIS)} "
        f"(default: {' '.join(DEFAULT_SYNTHESIS)}; none: the fonts as drawn)",
    )
    p.set_defaults(func=cmd_polydigits)

    p = sub.add_parser(
        "polyobjects", help="write the offline PolyObjects sources (things drawn by 12 emoji designs, 12 languages)"
    )
    p.add_argument("out", help="output folder, e.g. data/polyobjects")
    p.add_argument("--per-class", type=int, default=8, help="images per concept and design (the first as drawn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=48, help="side of the saved images in pixels")
    p.add_argument("--designs", nargs="*", metavar="DESIGN", help="only these designs (default: all twelve)")
    p.set_defaults(func=cmd_polyobjects)

    p = sub.add_parser(
        "fetch", help="fetch and verify the pinned npm packages (fonts, emoji, names) the built-in data draws from"
    )
    p.add_argument("--only", nargs="*", metavar="PURPOSE", help="only these purposes of the lock (fonts, emoji, …)")
    p.add_argument("--verify", action="store_true", help="re-hash every cached file; fetch again what was altered")
    p.set_defaults(func=cmd_fetch)

    recipe_help = "recipe YAML; any key can follow as --key value"
    p = sub.add_parser("prepare", help="unify a recipe's sources into one DatasetDict and save it")
    p.add_argument("recipe", help=recipe_help)
    p.add_argument("--output", help="where to save (default: the recipe's dataset_dir or OUTPUT_DIR/dataset)")
    p.add_argument(
        "--push-to-hub", metavar="REPO", help="also push the dataset, its card and reports to this dataset repository"
    )
    p.add_argument("--private", action="store_true", help="create the dataset repository private")
    p.add_argument(
        "--dry-run", action="store_true", help="with --push-to-hub: list what would be uploaded, upload nothing"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace --output even if polyglot-vision did not write it"
    )
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser(
        "align", help="write alignment.yaml: every source label, its candidate concepts, evidence and decision"
    )
    p.add_argument("recipe", help=recipe_help)
    p.add_argument("--output", help="where to write it (default: alignment.yaml beside the recipe)")
    p.add_argument("--overwrite", action="store_true", help="replace --output even if the recipe does not read it")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("train", help="prepare, fine-tune, test and export a model")
    p.add_argument("recipe", help=recipe_help)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a model on a recipe's split, per script, language and source")
    p.add_argument("model", help="model folder or Hub id")
    p.add_argument("--recipe", required=True, help=recipe_help)
    p.add_argument("--split", default="test", help="train, validation, test, or all (e.g. for a held-out set)")
    p.add_argument(
        "--output", help="also write the metrics to this JSON file (replaces only a file polyglot-vision wrote)"
    )
    p.add_argument(
        "--output-dir", help="report folder: report.md, metrics.json, plots (default: MODEL/evaluation-SPLIT)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --output-dir and --output even if polyglot-vision did not write them",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("transfer", help="train on each language alone, test on every language: a transfer matrix")
    p.add_argument("recipe", help=recipe_help)
    p.add_argument("--steps", type=int, default=200, help="training steps per run, the budget (default: 200)")
    p.add_argument("--leave-one-out", action="store_true", help="also train on all languages but each one")
    p.add_argument(
        "--output-dir",
        help="where to write transfer.json, transfer.md and the heat map (default: OUTPUT_DIR/transfer)",
    )
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser(
        "adapt", help="few-shot adaptation to a held-out script: fine-tuned vs from scratch, k shots per class"
    )
    p.add_argument(
        "recipe", help="adaptation recipe (e.g. recipes/polydigits/adapt.yaml); any key can follow as --key value"
    )
    p.add_argument(
        "--output-dir", help="where to write adaptation.json, adaptation.md and the curve (default: OUTPUT_DIR)"
    )
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("predict", help="top-k concepts of images, named in your language")
    p.add_argument("model", help="model folder or Hub id")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--lang", default=None, help="BCP-47 language of the answer (default: the model's)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--hint",
        default=None,
        metavar="SCRIPT|LANG",
        help="script (ISO 15924, e.g. Deva) or language (e.g. hi) the images are written in "
        "(models with label_granularity concept_script or concept_language)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("push", help="upload a model folder (weights, config, card, metrics, plots) to the Hub")
    p.add_argument("model", help="model folder")
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the model repository (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument(
        "--dry-run", action="store_true", help="list each file, uploaded or skipped, and why; upload nothing"
    )
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "demo", help="the Gradio demo on 127.0.0.1: draw or upload an image, read the answer in your language"
    )
    p.add_argument(
        "model", nargs="?", default=QUICKSTART_MODEL, help=f"model folder or Hub id (default: {QUICKSTART_MODEL})"
    )
    p.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    p.add_argument("--examples", default=None, help="folder of example images (PNG) to show under the upload")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("align", "prepare", "train", "evaluate", "transfer", "adapt"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _quiet_libraries()
    stdout = sys.stdout
    sys.stdout = _PrintableOutput(stdout)
    try:
        return args.func(args, extra)
    except UserError as err:  # its text is one line, safe to print (errors.printable)
        print(f"polyglot-vision: error: {err}", file=sys.stderr)
        return 2
    except PermissionError as err:  # a file or folder out of the user's reach, wherever it was met
        print(f"polyglot-vision: error: {printable(err.filename or err)}: permission denied", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polyglot-vision: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # no second error when Python flushes
        return 141
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
