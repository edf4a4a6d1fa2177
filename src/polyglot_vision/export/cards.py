"""Cards: the model card and the dataset card, written from what was measured.

`write_model_card` fills a `huggingface_hub.ModelCard` from the test metrics, the
label space and the recipe; `render_dataset_card` describes a prepared dataset from
its report. Both say only what the model's label space and metrics say: no knowledge
of one data set lives here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shlex
from collections import Counter
from pathlib import Path

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from ..evaluation.report import plot_confusion_matrix, summary_lines
from ..labels import script_name
from ..labels.alignment import outside_files_lines
from ..outputs import write_text
from ..paths import is_hub_id
from ..rendering import Markdown, fenced, markdown_table, md, md_code

logger = logging.getLogger(__name__)

DEFAULT_LICENSE = "apache-2.0"
CARD_TAGS = ["image-classification", "vision", "multilingual", "polyglot-vision"]
CONFUSION_PNG = "confusion_matrix.png"
CARD_NAMES_SHOWN = 40  # names per column in the card's "not evaluated" line (metrics.json lists them all)


# ---- the model card ---------------------------------------------------------------------------


def _sources(recipe) -> list[dict]:
    return [dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s) for s in (recipe.data.sources or [])]


def _card_languages(recipe, label_space) -> list[str]:
    codes = {str(s.get("language", "")).split("-")[0].lower() for s in _sources(recipe)}
    codes |= {lang.split("-")[0].lower() for lang in label_space.languages}
    return sorted(c for c in codes if c)


def _label_table(label_space, languages: list[str]) -> list[str]:
    rows = [(concept, *(label_space.display_name(concept, lang) for lang in languages)) for concept in label_space.ids]
    return markdown_table(["concept", *languages], rows)


def _readable_languages(recipe, label_space, limit: int = 10) -> list[str]:
    wanted = [label_space.default_language, *(s.get("language") for s in _sources(recipe))]
    known = set(label_space.languages)
    chosen = []
    for lang in wanted:
        if lang and lang in known and lang not in chosen:
            chosen.append(lang)
    return chosen[:limit]


def known_limits(metrics: dict, label_space, language: str, k: int = 5) -> list[str]:
    """Sentences on the most frequent confusions measured on the test split, with the scripts they happen in."""
    lines = []
    for row in (metrics.get("top_confusions") or [])[:k]:
        true, predicted, scripts = row["true"], row["predicted"], row.get("scripts") or {}
        where = ", ".join(f"{script_name(s)} {n}" for s, n in scripts.items())
        lines.append(
            f"- **{md(label_space.display_name(true, language))} ({md(true)}) read as "
            f"{md(label_space.display_name(predicted, language))} ({md(predicted)})**: {row['count']} test image(s)"
            + (f", by script: {where}" if where else "")
            + "."
        )
    return lines or ["- No confusions were measured on a test split when this card was written."]


def coverage_lines(metrics: dict) -> list[str]:
    """What the test numbers do not cover, and how the scores were calibrated: sentences for the card."""
    lines = []
    missing = metrics.get("not_evaluated") or {}
    if missing:
        named = "; ".join(
            f"{column} {', '.join(values[:CARD_NAMES_SHOWN])}"
            + (f" and {len(values) - CARD_NAMES_SHOWN} more" if len(values) > CARD_NAMES_SHOWN else "")
            for column, values in missing.items()
        )
        lines += [
            f"- **not evaluated: {named}** — the test split has no image of these, so the numbers above say "
            "nothing about them."
        ]
    calibration = metrics.get("calibration") or {}
    if calibration.get("fitted"):
        lines.append(
            f"- Scores are calibrated: softmax temperature {calibration['temperature']:.3f}, fitted on "
            f"{calibration['images']} validation images and folded into the head."
        )
    elif calibration:
        lines.append(
            f"- **Scores are not calibrated**: calibration was skipped ({calibration.get('reason')}); "
            "the softmax temperature is 1.0, as trained."
        )
    return lines


def answer_rules(config, label_space, language: str) -> list[str]:
    """The card's account of what an answer may say: when the model refuses, and the twins it names both of."""
    if config is None:
        return []
    lines = []
    refusal = list(getattr(config, "refusal_concepts", None) or [])
    if refusal:
        threshold = float(getattr(config, "refusal_threshold", None) or 0.5)
        names = ", ".join(f"{md(label_space.display_name(c, language))} ({md_code(c)})" for c in refusal)
        lines += [
            f"The model learnt a class for what is none of its concepts: {names}. It is never given as an answer: "
            f"an image that puts {threshold:.0%} of its probability or more on it (`refusal_threshold` in "
            "`config.json`, fitted on the validation split) is refused; `polyglot-vision predict --json` and "
            "`Predictor.top_k` say `refused: true` with a reason. `pipeline()` shows the class like any other.",
            "",
        ]
    twins = list(getattr(config, "label_twins", None) or [])
    if twins:
        concept, script = config.joint_label_concept, getattr(config, "joint_label_script", None) or {}

        def read_as(label: str) -> str:
            name = script_name(script[label]) if script.get(label) else label
            return f"{md(label_space.display_name(concept[label], language))} ({md(concept[label])}, {md(name)})"

        lines += [
            "Twins: shapes that two scripts draw alike for different numbers. Without a hint an answer names both "
            "(`twin` in `predict --json` and `Answer.twin`); with a script or language hint it names one.",
            "",
            *[f"- {read_as(a)} and {read_as(b)}" for a, b in twins],
            "",
        ]
    return lines[:-1] if lines else []


# A recipe line that sets a secret (`hub_token: hf_…`): shown in the card without its value.
_SECRET_LINE = re.compile(
    r"^(\s*-?\s*[\"']?[\w.-]*(?:token|password|secret)[\w.-]*[\"']?\s*:).*$", re.IGNORECASE | re.MULTILINE
)


def _recipe_yaml(recipe) -> str:
    if recipe.path and Path(recipe.path).is_file():
        return _SECRET_LINE.sub(r"\1 <redacted>", Path(recipe.path).read_text(encoding="utf-8").strip())
    data = {
        "model_name_or_path": recipe.model.model_name_or_path,
        "model_config": recipe.model.model_config,
        "label_space": recipe.data.label_space,
        "sources": _sources(recipe),
    }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).strip()


def card_data(recipe, label_space, metrics: dict, model_name: str) -> ModelCardData:
    sources = _sources(recipe)
    datasets = sorted({s["path"] for s in sources if is_hub_id(s.get("path"))})
    base_model = recipe.model.model_name_or_path if is_hub_id(recipe.model.model_name_or_path) else None
    eval_results = []
    if metrics.get("accuracy") is not None:
        dataset_name = ", ".join(s.get("name", s.get("path", "")) for s in sources) or "test split"
        common = dict(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=datasets[0] if len(datasets) == 1 else "polyglot-vision/unified",
            dataset_name=dataset_name,
            dataset_split="test",
        )
        eval_results = [
            EvalResult(
                metric_type="accuracy", metric_name="Accuracy", metric_value=float(metrics["accuracy"]), **common
            ),
            EvalResult(
                metric_type="f1",
                metric_name="Macro F1",
                metric_args={"average": "macro"},
                metric_value=float(metrics["macro_f1"]),
                **common,
            ),
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


def render_card(
    recipe, label_space, metrics: dict, model_name: str, confusion_png: str | None = None, config=None
) -> ModelCard:
    data = card_data(recipe, label_space, metrics, model_name)
    languages = _readable_languages(recipe, label_space)
    lines = [
        f"# {md(model_name)}",
        "",
        f"An image classifier of the {len(label_space.ids)} concepts of the {md(label_space.name)} label space, "
        f"fine-tuned with polyglot-vision on {len(_sources(recipe))} image sets labelled "
        f"in {len({s.get('language') for s in _sources(recipe)})} languages. Its labels are language-neutral concept "
        f"ids; `config.json` carries their names in {len(label_space.languages)} languages (`label_display_names`).",
        "",
        "## Results on the test split",
        "",
    ]
    lines += (
        summary_lines(metrics, heading="###")
        if metrics.get("accuracy") is not None
        else ["No test metrics were measured."]
    )
    coverage = coverage_lines(metrics)
    if coverage:
        lines += ["", "### Coverage and calibration", "", *coverage]
    if confusion_png:
        lines += ["", "### Confusion matrix", "", f"![Confusion matrix on the test split]({confusion_png})"]
    lines += [
        "",
        "## Labels",
        "",
        "Concept ids and their display names in some of the model's languages:",
        "",
        *_label_table(label_space, languages),
    ]
    example_lang = next(
        (lang for lang in languages if lang != label_space.default_language), label_space.default_language
    )
    lines += [
        "",
        "## Known limits",
        "",
        "Most frequent confusions on the test split:",
        "",
        *known_limits(metrics, label_space, label_space.default_language),
    ]
    rules = answer_rules(config, label_space, label_space.default_language)
    if rules:
        lines += ["", "## Refused images and twins", "", *rules]
    lines += [
        "",
        "## How to use",
        "",
        *fenced(
            "\n".join(
                [
                    "from transformers import pipeline",
                    "",
                    f'classify = pipeline("image-classification", model={json.dumps(model_name, ensure_ascii=False)})',
                    'result = classify("image.png", top_k=3)  # labels are concept ids',
                    "names = classify.model.config.label_display_names  # {language: {concept id: name}}",
                    f"print([(names[{json.dumps(example_lang)}].get(r['label'], r['label']), r['score']) "
                    "for r in result])",
                ]
            ),
            "python",
        ),
        "",
        "or, with the names in your language:",
        "",
        *fenced(
            f"polyglot-vision predict {shlex.quote(_one_line(model_name))} image.png "
            f"--lang {shlex.quote(_one_line(example_lang))} --top-k 3",
            "bash",
        ),
        "",
        "## Training recipe",
        "",
        *fenced(_recipe_yaml(recipe), "yaml"),
        "",
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_model_card(
    output_dir: str | Path, recipe, label_space, metrics: dict | None, model_name: str | None = None, config=None
) -> Path:
    """README.md of an exported model, from the test metrics; also draws confusion_matrix.png from them."""
    output_dir = Path(output_dir)
    metrics = dict(metrics or {})
    model_name = model_name or getattr(recipe.training, "hub_model_id", None) or output_dir.name
    confusion_png = None
    if metrics.get("confusion_matrix"):
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            metrics.get("labels") or label_space.ids,
            output_dir / CONFUSION_PNG,
            f"Confusion matrix, test ({metrics.get('n', '?')} images)",
        )
    if (output_dir / CONFUSION_PNG).is_file():
        confusion_png = CONFUSION_PNG
    card = render_card(recipe, label_space, metrics, model_name, confusion_png, config)
    return write_text(output_dir / "README.md", str(card))


# ---- the dataset card -----------------------------------------------------------------------------

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
    hub_sources = sorted({s["path"] for s in report["source_info"] if is_hub_id(s["path"])})
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
        f"# {md(name)}",
        "",
        f"{sum(r['images'] for r in report['splits'].values())} images of the {len(label_space.ids)} concepts of "
        f"the {md(label_space.name)} label space, unified by polyglot-vision from {len(report['source_info'])} "
        f"image sets labelled in {len(languages)} languages. Columns: `image`, `label` (a `ClassLabel` of concept "
        "ids), `language` (BCP-47), `script` (ISO 15924), `source`.",
        "",
    ]
    counts = [("language", "by_language", languages), ("concept", "by_concept", report["concepts"])]
    for column, key, values in counts:
        rows = [(value, *(report["splits"][s][key].get(value, 0) for s in splits)) for value in values]
        lines += [
            f"## Images per {column}",
            "",
            *markdown_table([column, *splits], rows, range(1, len(splits) + 1)),
            "",
        ]
    rows = [
        (
            s["name"],
            s["path"],
            s["language"],
            s["script"],
            s.get("license") or "not given",
            report["sources"].get(s["name"], {}).get("kept", 0),
        )
        for s in report["source_info"]
    ]
    lines += [
        "## Sources",
        "",
        *markdown_table(["source", "path", "language", "script", "license", "images kept"], rows, numeric=(5,)),
    ]
    dup = report["duplicates"]
    bad = sum(row["bad_images"] for row in report["sources"].values())
    lines += [
        "",
        f"Identical images were kept once ({dup['removed']} copies removed, none shared between splits); "
        f"{bad} unreadable images were left out. See `alignment_report.md` for every source label, the "
        "method that mapped it and its score.",
    ]
    lines += outside_files_lines(report)
    # Labels not settled by the registry in their own language: what the alignment rests on.
    weighed = [
        row
        for row in report["alignment"]
        if row.get("decision") != "accepted" or row["method"] in ("embedding", "images", "reviewed", "new")
    ]
    if weighed:
        counts = Counter(row.get("decision", "accepted") for row in report["alignment"])
        lines += [
            "",
            "## Label alignment",
            "",
            f"{counts['accepted']} source labels accepted, {counts['proposed']} proposed and {counts['unmapped']} "
            f"unmapped (not merged: `unmapped_labels: {report.get('unmapped_labels')}`). Text evidence: "
            f"{report.get('embedding_backend') or 'none'}; "
            f"image votes: {'on' if report.get('image_votes') else 'off'}. "
            "The labels whose alignment was weighed rather than looked up:",
            "",
            *markdown_table(
                ["source", "label", "decision", "concept", "method", "evidence", "images"],
                [
                    (
                        row["source"],
                        row["label"],
                        row.get("decision", ""),
                        row["concept"] or "–",
                        row["method"],
                        row.get("evidence", ""),
                        row["images"],
                    )
                    for row in weighed[:200]
                ],
                numeric=(6,),
            ),
        ]
    # The dataset's own languages first, then the registry's others, as far as a table stays readable.
    shown = [lang for lang in languages if lang in label_space.languages]
    shown += [lang for lang in label_space.languages if lang not in shown][: max(0, 12 - len(shown))]
    marks = {"machine": "\\*", "source": "†"}
    rows = [
        (
            concept.id,
            *(
                Markdown(md(concept.names[lang]) + marks.get(concept.origins.get(lang, "human"), ""))
                if lang in concept.names
                else ""
                for lang in shown
            ),
        )
        for concept in label_space.concepts
    ]
    lines += [
        "",
        "## Label names",
        "",
        "Names per language (\\* machine translation, † taken from a source):",
        "",
        *markdown_table(["concept", *shown], rows),
    ]
    lines += [
        "",
        "## Load it",
        "",
        *fenced(
            "\n".join(
                [
                    "from datasets import load_dataset",
                    "",
                    f"dataset = load_dataset({json.dumps(name, ensure_ascii=False)})",
                    'names = dataset["train"].features["label"].names',
                ]
            ),
            "python",
        ),
        "",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def write_dataset_card(dataset_dir: str | Path, report: dict, label_space, name: str) -> Path:
    return write_text(Path(dataset_dir) / "README.md", str(render_dataset_card(report, label_space, name)))
