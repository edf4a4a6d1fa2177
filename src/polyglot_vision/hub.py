"""Export to the Hub: the model card, the list of files a model repository gets, and the push.

`write_model_card` fills a `huggingface_hub.ModelCard` from the measured
metrics (metrics.json), the label space and the recipe; `train()` calls it on
the main process. `files_to_upload` is what `polyglot-vision push` (and a
recipe's `push_to_hub: true`) sends: weights, config, preprocessor, card,
metrics and plots, never checkpoints, optimizer states or training_args.bin.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from .errors import UserError, first_line

logger = logging.getLogger(__name__)

DEFAULT_LICENSE = "apache-2.0"
CARD_TAGS = ["image-classification", "vision", "multilingual", "polyglot-vision"]
CONFUSION_PNG = "confusion_matrix.png"
# Top-level files of an exported model that a Hub repository gets.
UPLOAD_PATTERNS = (
    "config.json",
    "preprocessor_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "README.md",
    "metrics.json",
    "*_results.json",
    "*.png",
)
# Files in `evaluation-<split>/` report folders (see report.py).
REPORT_PATTERNS = ("report.md", "metrics.json", "*.png")
# Unicode zero of each script's decimal digits, to write a digit concept as that script's numeral.
SCRIPT_ZERO = {
    "Latn": 0x30, "Arab": 0x660, "Deva": 0x966, "Beng": 0x9E6, "Gujr": 0xAE6, "Guru": 0xA66, "Orya": 0xB66,
    "Taml": 0xBE6, "Telu": 0xC66, "Knda": 0xCE6, "Mlym": 0xD66, "Thai": 0xE50, "Laoo": 0xED0, "Tibt": 0xF20,
    "Mymr": 0x1040, "Khmr": 0x17E0, "Mong": 0x1810,
}
HAN_DIGITS = "〇一二三四五六七八九"
SCRIPT_NAMES = {
    "Latn": "Latin", "Arab": "Arabic-Indic", "Deva": "Devanagari", "Beng": "Bengali", "Gujr": "Gujarati",
    "Taml": "Tamil", "Telu": "Telugu", "Knda": "Kannada", "Thai": "Thai", "Khmr": "Khmer", "Mymr": "Myanmar",
    "Hani": "Han",
}


# ---- the files of a model repository ---------------------------------------------------------


def files_to_upload(model_dir: str | Path) -> list[Path]:
    """The files of an exported model folder that belong in its Hub repository, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model folder {model_dir} not found")
    files = [
        path for path in model_dir.iterdir()
        if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in UPLOAD_PATTERNS)
    ]
    for report in model_dir.glob("evaluation-*"):
        if report.is_dir():
            files += [p for p in report.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, q) for q in REPORT_PATTERNS)]
    return sorted(files, key=lambda p: p.relative_to(model_dir).as_posix())


def push_model(model_dir: str | Path, repo_id: str, private: bool | None = None, token: str | None = None,
               commit_message: str = "Upload model trained with polyglot-vision") -> str:
    """Create (or reuse) the model repository and upload `files_to_upload` in one commit; returns its URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    model_dir = Path(model_dir)
    files = files_to_upload(model_dir)
    missing = [name for name in ("config.json", "README.md") if not (model_dir / name).is_file()]
    if missing:
        raise UserError(f"model folder {model_dir}: {', '.join(missing)} missing; is it a trained model?")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        operations = [CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p))
                      for p in files]
        api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    except Exception as err:  # offline, no token, no rights: one line that names the repository
        reason = first_line(err)
        raise UserError(f"push to {repo_id} failed ({reason})") from None
    return str(url)


# ---- the model card ---------------------------------------------------------------------------


def _is_hub_id(path: str | None) -> bool:
    return bool(path) and not Path(path).expanduser().exists() and not path.startswith((".", "/", "~")) \
        and path.count("/") == 1


def numeral(concept: str, script: str) -> str:
    """A digit concept written in a script's numerals ("5", "Arab" -> "٥"); the concept id otherwise."""
    if not (concept.isdigit() and len(concept) == 1):
        return concept
    if script == "Hani":
        return HAN_DIGITS[int(concept)]
    zero = SCRIPT_ZERO.get(script)
    return chr(zero + int(concept)) if zero is not None else concept


def _sources(recipe) -> list[dict]:
    import dataclasses

    return [dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s) for s in (recipe.data.sources or [])]


def _card_languages(recipe, label_space) -> list[str]:
    codes = {str(s.get("language", "")).split("-")[0].lower() for s in _sources(recipe)}
    codes |= {lang.split("-")[0].lower() for lang in label_space.languages}
    return sorted(c for c in codes if c)


def _pct(value) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "–"


def _group_table(per_value: dict, column: str, describe=None) -> list[str]:
    lines = [f"| {column} | accuracy | test images |", "|---|---:|---:|"]
    for value, row in per_value.items():
        label = describe(value) if describe else value
        lines.append(f"| {label} | {_pct(row['accuracy'])} | {row['n']} |")
    return lines


def _label_table(label_space, languages: list[str]) -> list[str]:
    header = "| concept | " + " | ".join(languages) + " |"
    lines = [header, "|---|" + "---|" * len(languages)]
    for concept in label_space.ids:
        cells = [label_space.display_name(concept, lang) for lang in languages]
        lines.append(f"| {concept} | " + " | ".join(cells) + " |")
    return lines


def _readable_languages(recipe, label_space, limit: int = 10) -> list[str]:
    wanted = [label_space.default_language, *(s.get("language") for s in _sources(recipe))]
    known = set(label_space.languages)
    chosen = []
    for lang in wanted:
        if lang and lang in known and lang not in chosen:
            chosen.append(lang)
    return chosen[:limit]


def known_limits(metrics: dict, k: int = 5) -> list[str]:
    """Sentences on the most frequent confusions measured on the test split."""
    lines = []
    for row in (metrics.get("top_confusions") or [])[:k]:
        true, predicted, scripts = row["true"], row["predicted"], row.get("scripts") or {}
        where = ", ".join(f"{SCRIPT_NAMES.get(s, s)} {n}" for s, n in scripts.items())
        glyphs = ", ".join(
            f"{SCRIPT_NAMES.get(s, s)} {numeral(true, s)}" for s in scripts if numeral(true, s) != true or s == "Latn"
        )
        glyph_text = f" ({glyphs})" if glyphs else ""
        lines.append(
            f"- **{true} read as {predicted}**{glyph_text}: {row['count']} test image(s)"
            + (f" — by script: {where}" if where else "")
            + f"; compare with {predicted} in other scripts: Latin {numeral(predicted, 'Latn')}, "
            f"Arabic-Indic {numeral(predicted, 'Arab')}, Devanagari {numeral(predicted, 'Deva')}, "
            f"Bengali {numeral(predicted, 'Beng')}."
        )
    if not lines:
        lines = [
            "- Numerals of different scripts that share a shape are the hard cases: Arabic-Indic ٥ (5) looks like "
            "Latin 0, Bengali ৪ (4) like Latin 8, Arabic-Indic ٧ (7) like Latin V, Devanagari ९ (9) like Latin 9 "
            "turned. No measured confusions were available when this card was written."
        ]
    return lines


def _recipe_yaml(recipe) -> str:
    if recipe.path and Path(recipe.path).is_file():
        return Path(recipe.path).read_text(encoding="utf-8").strip()
    data = {"model_name_or_path": recipe.model.model_name_or_path, "model_config": recipe.model.model_config,
            "label_space": recipe.data.label_space, "sources": _sources(recipe)}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).strip()


def card_data(recipe, label_space, metrics: dict, model_name: str) -> ModelCardData:
    sources = _sources(recipe)
    datasets = sorted({s["path"] for s in sources if _is_hub_id(s.get("path"))})
    base_model = recipe.model.model_name_or_path if _is_hub_id(recipe.model.model_name_or_path) else None
    eval_results = []
    if metrics.get("accuracy") is not None:
        dataset_name = ", ".join(s.get("name", s.get("path", "")) for s in sources) or "test split"
        common = dict(task_type="image-classification", task_name="Image Classification",
                      dataset_type=datasets[0] if len(datasets) == 1 else "polyglot-vision/unified",
                      dataset_name=dataset_name, dataset_split="test")
        eval_results = [
            EvalResult(metric_type="accuracy", metric_name="Accuracy", metric_value=float(metrics["accuracy"]), **common),
            EvalResult(metric_type="f1", metric_name="Macro F1", metric_args={"average": "macro"},
                       metric_value=float(metrics["macro_f1"]), **common),
        ]
    return ModelCardData(
        language=_card_languages(recipe, label_space),
        license=getattr(recipe.model, "license", None) or DEFAULT_LICENSE,
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=list(CARD_TAGS),
        datasets=datasets or None,
        base_model=base_model,
        metrics=["accuracy", "f1"],
        model_name=model_name,
        eval_results=eval_results or None,
    )


def render_card(recipe, label_space, metrics: dict, model_name: str, confusion_png: str | None = None) -> ModelCard:
    data = card_data(recipe, label_space, metrics, model_name)
    languages = _readable_languages(recipe, label_space)
    lines = [
        f"# {model_name}",
        "",
        f"An image classifier of the {len(label_space.ids)} concepts of the `{label_space.name}` label space, "
        f"fine-tuned with polyglot-vision on {len(_sources(recipe))} image sets labelled "
        f"in {len({s.get('language') for s in _sources(recipe)})} languages. Its labels are language-neutral concept "
        f"ids; `config.json` carries their names in {len(label_space.languages)} languages (`label_display_names`).",
        "",
        "## Results on the test split",
        "",
    ]
    if metrics.get("accuracy") is not None:
        lines += ["| metric | value |", "|---|---:|",
                  f"| accuracy | {_pct(metrics['accuracy'])} |",
                  f"| macro-F1 | {metrics['macro_f1']:.4f} |"]
        if "balanced_accuracy" in metrics:
            lines.append(f"| balanced accuracy | {_pct(metrics['balanced_accuracy'])} |")
        if "expected_calibration_error" in metrics:
            lines.append(f"| expected calibration error (15 bins) | {metrics['expected_calibration_error']:.4f} |")
        for column in ("language", "script", "source"):
            if f"worst_{column}_accuracy" in metrics:
                lines.append(f"| worst {column} accuracy | {_pct(metrics[f'worst_{column}_accuracy'])} |")
        lines.append(f"| test images | {metrics.get('n', '–')} |")
    else:
        lines.append("No test metrics were measured.")
    if metrics.get("per_language"):
        lines += ["", "### Per language", "", *_group_table(metrics["per_language"], "language")]
    if metrics.get("per_script"):
        lines += ["", "### Per script", "",
                  *_group_table(metrics["per_script"], "script",
                                lambda s: f"{s} ({SCRIPT_NAMES[s]})" if s in SCRIPT_NAMES else s)]
    if confusion_png:
        lines += ["", "### Confusion matrix", "", f"![Confusion matrix on the test split]({confusion_png})"]
    lines += ["", "## Labels", "", "Concept ids and their display names in some of the model's languages:", "",
              *_label_table(label_space, languages)]
    lines += ["", "## Known limits", "",
              "Most frequent confusions on the test split (numerals of different scripts can share a shape):", "",
              *known_limits(metrics)]
    example_lang = next((lang for lang in languages if lang != label_space.default_language), label_space.default_language)
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'classify = pipeline("image-classification", model="{model_name}")',
        'result = classify("digit.png", top_k=3)  # labels are concept ids',
        "names = classify.model.config.label_display_names  # {language: {concept id: name}}",
        f'print([(names["{example_lang}"].get(r["label"], r["label"]), r["score"]) for r in result])',
        "```",
        "",
        "or, with the names in your language:",
        "",
        "```bash",
        f"polyglot-vision predict {model_name} digit.png --lang {example_lang} --top-k 3",
        "```",
        "",
        "## Training recipe",
        "",
        "```yaml",
        _recipe_yaml(recipe),
        "```",
        "",
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)


def write_model_card(output_dir: str | Path, recipe, label_space, metrics: dict | None,
                     model_name: str | None = None) -> Path:
    """README.md of an exported model, from the test metrics; also draws confusion_matrix.png from them."""
    output_dir = Path(output_dir)
    metrics = dict(metrics or {})
    model_name = model_name or getattr(recipe.training, "hub_model_id", None) or output_dir.name
    confusion_png = None
    if metrics.get("confusion_matrix"):
        from .report import plot_confusion_matrix

        plot_confusion_matrix(metrics["confusion_matrix"], metrics.get("labels") or label_space.ids,
                              output_dir / CONFUSION_PNG, f"Confusion matrix, test ({metrics.get('n', '?')} images)")
    if (output_dir / CONFUSION_PNG).is_file():
        confusion_png = CONFUSION_PNG
    card = render_card(recipe, label_space, metrics, model_name, confusion_png)
    path = output_dir / "README.md"
    tmp = path.with_name(".README.md.tmp")
    card.save(tmp)
    tmp.replace(path)
    return path


def finish_export(output_dir: str | Path, recipe, label_space, metrics: dict) -> Path:
    """End of `train()` on the main process: write the card, and push when the recipe says `push_to_hub`."""
    args = recipe.training
    path = write_model_card(output_dir, recipe, label_space, metrics)
    if getattr(args, "push_to_hub", False):
        # After the Trainer's own pushes: our card, metrics and plots replace its generated README.
        repo_id = args.hub_model_id or Path(output_dir).name
        url = push_model(output_dir, repo_id, private=getattr(args, "hub_private_repo", None), token=args.hub_token)
        print(f"Pushed to {url}", flush=True)
    return path


# ---- the dataset card and the dataset push ----------------------------------------------------------

DATASET_TAGS = ["polyglot-vision", "multilingual", "image-classification"]
DATASET_FILES = ("README.md", "alignment_report.md", "alignment_report.json")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _dataset_license(report: dict) -> str:
    """One licence when every source has the same one; `other` when they differ or are not given."""
    licences = {str(s.get("license") or "").strip().lower() for s in report["source_info"]}
    return licences.pop() if len(licences) == 1 and "" not in licences and " " not in next(iter(licences)) else "other"


def dataset_card_data(report: dict, label_space) -> DatasetCardData:
    total = sum(row["images"] for row in report["splits"].values())
    hub_sources = sorted({s["path"] for s in report["source_info"] if _is_hub_id(s["path"])})
    languages = sorted({lang.split("-")[0].lower() for lang in report["languages"]})
    return DatasetCardData(
        language=languages,
        license=_dataset_license(report),
        task_categories=["image-classification"],
        tags=list(DATASET_TAGS),
        size_categories=[_size_category(total)],
        source_datasets=hub_sources or None,
        pretty_name=f"{label_space.name} images in {len(report['languages'])} languages",
    )


def render_dataset_card(report: dict, label_space, name: str) -> DatasetCard:
    """The dataset card of a prepared dataset: counts per language and concept, sources and licences, label names."""
    data = dataset_card_data(report, label_space)
    splits = list(report["splits"])
    languages = report["languages"]
    lines = [
        f"# {name}",
        "",
        f"{sum(r['images'] for r in report['splits'].values())} images of the {len(label_space.ids)} concepts of "
        f"the `{label_space.name}` label space, unified by polyglot-vision from {len(report['source_info'])} "
        f"image sets labelled in {len(languages)} languages. Columns: `image`, `label` (a `ClassLabel` of concept "
        "ids), `language` (BCP-47), `script` (ISO 15924), `source`.",
        "",
        "## Images per language",
        "",
        "| language | " + " | ".join(splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for lang in languages:
        lines.append(f"| {lang} | " + " | ".join(str(report["splits"][s]["by_language"].get(lang, 0)) for s in splits) + " |")
    lines += ["", "## Images per concept", "", "| concept | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for concept in report["concepts"]:
        lines.append(f"| {concept} | " + " | ".join(str(report["splits"][s]["by_concept"].get(concept, 0))
                                                   for s in splits) + " |")
    lines += ["", "## Sources", "", "| source | path | language | script | license | images kept |",
              "|---|---|---|---|---|---:|"]
    for source in report["source_info"]:
        kept = report["sources"].get(source["name"], {}).get("kept", 0)
        lines.append(f"| {source['name']} | {source['path']} | {source['language']} | {source['script']} | "
                     f"{source.get('license') or 'not given'} | {kept} |")
    dup = report["duplicates"]
    bad = sum(row["bad_images"] for row in report["sources"].values())
    lines += ["", f"Identical images were kept once ({dup['removed']} copies removed, none shared between splits); "
              f"{bad} unreadable images were left out. See `alignment_report.md` for every source label, the "
              "method that mapped it and its score."]
    # The dataset's own languages first, then the registry's others, as far as a table stays readable.
    shown = [lang for lang in languages if lang in label_space.languages]
    shown += [lang for lang in label_space.languages if lang not in shown][: max(0, 12 - len(shown))]
    lines += ["", "## Label names", "", "Names per language (\\* machine translation, † taken from a source):", "",
              "| concept | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    marks = {"machine": "\\*", "source": "†"}
    for concept in label_space.concepts:
        cells = [concept.names.get(lang, "") + marks.get(concept.origins.get(lang, "human"), "") if lang in concept.names
                 else "" for lang in shown]
        lines.append(f"| {concept.id} | " + " | ".join(cells) + " |")
    lines += ["", "## Load it", "", "```python", "from datasets import load_dataset", "",
              f'dataset = load_dataset("{name}")', 'names = dataset["train"].features["label"].names', "```", ""]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def write_dataset_card(dataset_dir: str | Path, report: dict, label_space, name: str) -> Path:
    path = Path(dataset_dir) / "README.md"
    render_dataset_card(report, label_space, name).save(path)
    return path


def dataset_upload_plan(dataset_dir: str | Path) -> list[str]:
    """What `prepare --push-to-hub` uploads: one parquet file per split (as `push_to_hub` writes them) and the card and reports."""
    from datasets import load_from_disk

    dataset_dir = Path(dataset_dir)
    dataset = load_from_disk(str(dataset_dir))
    files = [f"data/{split}-00000-of-00001.parquet ({len(part)} images)" for split, part in dataset.items() if len(part)]
    return files + [name for name in DATASET_FILES if (dataset_dir / name).is_file()]


def push_dataset(dataset_dir: str | Path, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """Push the prepared DatasetDict with `push_to_hub`, then the card (keeping the configs it wrote) and the reports."""
    from datasets import load_from_disk
    from huggingface_hub import HfApi

    dataset_dir = Path(dataset_dir)
    dataset = load_from_disk(str(dataset_dir))
    ours = DatasetCard.load(dataset_dir / "README.md")
    try:
        dataset.push_to_hub(repo_id, private=private, token=token)
        generated = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        for key in ("configs", "dataset_info"):  # what the Hub's viewer and load_dataset read
            if generated.data.get(key) is not None:
                ours.data[key] = generated.data.get(key)
        ours.push_to_hub(repo_id, repo_type="dataset", token=token)
        api = HfApi(token=token)
        for name in DATASET_FILES[1:]:
            if (dataset_dir / name).is_file():
                api.upload_file(path_or_fileobj=str(dataset_dir / name), path_in_repo=name, repo_id=repo_id,
                                repo_type="dataset")
    except Exception as err:  # offline, no token, no rights: one line that names the repository
        raise UserError(f"push to {repo_id} failed ({first_line(err)})") from None
    return f"https://huggingface.co/datasets/{repo_id}"
