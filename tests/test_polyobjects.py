"""PolyObjects: things drawn by a dozen emoji designs, each labelled in its own language, as a user meets them.

A handful of concepts drawn by three designs (English, French, Korean labels) stand in for the whole set; the
rule that picks the 292 concepts is checked against the committed registry.
"""

from __future__ import annotations

import json
import re
import socket
import unicodedata
from pathlib import Path

import pytest
import yaml
from PIL import Image

from polyglot_vision.builtin_data.polyobjects import (
    DESIGNS,
    FAMILIES,
    generate_polyobjects,
    object_concepts,
    registry,
    select_concepts,
)
from polyglot_vision.cli import main
from polyglot_vision.errors import UserError
from polyglot_vision.experiments.held_out_designs import held_out_designs, markdown
from polyglot_vision.labels.languages import language_key
from polyglot_vision.labels.registry import LabelSpace

from conftest import LABELS, TINY_MODEL, fails, write_yaml

CONCEPTS = ["cat", "dog", "bicycle", "pizza", "house"]
DESIGN_NAMES = ["twemoji", "openmoji", "emojione-monotone"]
WORDS = {  # what a speaker of each design's language reads on the folders (CLDR names)
    "twemoji-en": {"cat", "dog", "bicycle", "pizza", "house"},
    "openmoji-fr": {"chat", "chien", "vélo", "pizza", "maison"},
    "emojione-monotone-ko": {"고양이", "개", "자전거", "피자", "집"},
}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("polyobjects") / "data"
    generate_polyobjects(out, per_class=3, image_size=24, designs=DESIGN_NAMES, concepts=CONCEPTS, progress=False)
    return out


def test_each_design_is_a_folder_of_names_in_its_own_language(small):
    for source, words in WORDS.items():
        folders = {p.name for p in (small / source).iterdir()}
        assert {unicodedata.normalize("NFC", f) for f in folders} == words, source
        for folder in (small / source).iterdir():
            assert len(list(folder.glob("*.png"))) == 3


def test_images_are_rgb_drawings_on_white_at_the_asked_size(small):
    for path in sorted(small.rglob("*.png")):
        image = Image.open(path)
        assert image.mode == "RGB" and image.size == (24, 24), path
        assert image.getpixel((0, 0)) == (255, 255, 255), path
        assert len(image.getcolors(24 * 24)) > 2, path  # something is drawn


def test_sources_yaml_is_a_recipe_that_prepares_the_data(small, tmp_path):
    sources = yaml.safe_load((small / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    assert [s["name"] for s in sources] == list(WORDS)
    for source in sources:
        source["path"] = str(small / source["path"])
    recipe = write_yaml(
        tmp_path / "recipe.yaml",
        {
            "model_config": dict(TINY_MODEL),
            "label_space": str(LABELS / "polyobjects.yaml"),
            "sources": sources,
            "validation_fraction": 0.34,
            "test_fraction": 0.34,
            "output_dir": str(tmp_path / "model"),
        },
    )
    assert main(["prepare", str(recipe)]) == 0
    report = (tmp_path / "model" / "dataset" / "alignment_report.md").read_text(encoding="utf-8")
    assert "| emojione-monotone-ko | ko | 고양이 | accepted | cat |" in report


def test_the_card_names_each_designs_licence_and_author(small):
    card = (small / "README.md").read_text(encoding="utf-8")
    assert "| `openmoji-fr` |" in card and "CC-BY-SA-4.0" in card and "OpenMoji" in card
    assert "| `twemoji-en` |" in card and "CC-BY-4.0" in card
    assert "cldr-annotations-full@" in card and "Unicode-3.0" in card


def test_the_same_seed_draws_the_same_images_and_another_seed_other_variants(tmp_path):
    def draw(out, seed):
        generate_polyobjects(out, per_class=2, image_size=16, designs=["noto"], concepts=["cat"], seed=seed)
        return [p.read_bytes() for p in sorted(out.rglob("*.png"))]

    first, again, other = draw(tmp_path / "a", 0), draw(tmp_path / "b", 0), draw(tmp_path / "c", 1)
    assert first == again
    assert first[0] == other[0] and first[1] != other[1]  # the design as drawn, then a seeded variant


def test_the_concept_table_and_the_registry_are_what_the_pinned_packages_give():
    assert select_concepts() == object_concepts()
    committed = yaml.safe_load((LABELS / "polyobjects.yaml").read_text(encoding="utf-8"))
    assert committed == registry()
    space = LabelSpace.from_yaml(LABELS / "polyobjects.yaml")
    assert len(space.ids) >= 200 and len(space.languages) >= 10
    assert {c["family"] for c in committed["concepts"]} == set(FAMILIES.values())
    assert {"cat", "bicycle", "pizza", "house"} <= set(space.ids)
    assert not {"grinning face", "thumbs up", "flag: France", "red heart"} & set(space.ids)
    # `datasets` would read a folder named with a split's word ("train de montagne") as a split, not a class
    splits = {"train", "training", "test", "testing", "eval", "evaluation", "valid", "validation", "val", "dev"}
    for concept in committed["concepts"]:
        for name in concept["names"].values():
            assert not splits & set(re.split(r"[-._ 0-9]+", name.casefold())), name


def test_twelve_designs_speak_at_least_eight_languages_in_four_scripts_and_three_are_held_out():
    assert len(DESIGNS) == 12
    assert len({d.language for d in DESIGNS}) >= 8 and len({d.script for d in DESIGNS}) >= 4
    held = [d for d in DESIGNS if d.held_out]
    assert len(held) >= 3
    trained_lineages = {d.lineage for d in DESIGNS if not d.held_out}
    assert not trained_lineages & {d.lineage for d in held}  # whole lineages held out
    space = LabelSpace.from_yaml(LABELS / "polyobjects.yaml")
    assert {d.language for d in DESIGNS} <= {language_key(lang) for lang in space.languages}


def test_the_recipe_trains_on_no_held_out_design():
    recipe = yaml.safe_load((Path(LABELS).parent / "polyobjects" / "quickstart.yaml").read_text(encoding="utf-8"))
    trained = {s["name"] for s in recipe["sources"]}
    assert trained == {d.source for d in DESIGNS if not d.held_out}


def test_an_unknown_design_or_concept_is_one_line(capsys, tmp_path):
    fails(capsys, ["polyobjects", tmp_path / "out", "--designs", "wingdings"], "'wingdings'", "design")
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="'unicorn face'"):
        generate_polyobjects(tmp_path / "out", designs=["noto"], concepts=["unicorn face"], progress=False)


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory) -> Path:
    """A tiny model trained on the English and French designs; the Korean monotone one is left for judging."""
    work = tmp_path_factory.mktemp("train")
    sources = yaml.safe_load((small / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    recipe = write_yaml(
        work / "recipe.yaml",
        {
            "model_config": dict(TINY_MODEL),
            "label_space": str(LABELS / "polyobjects.yaml"),
            "sources": [{**s, "path": str(small / s["path"])} for s in sources[:2]],
            "validation_fraction": 0.34,
            "test_fraction": 0.34,
            "output_dir": str(work / "model"),
            "max_steps": 3,
            "per_device_train_batch_size": 8,
            "eval_strategy": "no",
            "save_strategy": "no",
            "disable_tqdm": True,
        },
    )
    assert main(["train", str(recipe)]) == 0
    return work / "model"


@pytest.mark.parametrize("flag", ["--hint", "--lang"])
def test_predict_answers_with_the_concepts_name_in_the_asked_language(trained, small, flag, capsys):
    image = next((small / "twemoji-en" / "cat").glob("*.png"))
    capsys.readouterr()
    assert main(["predict", str(trained), str(image), flag, "ja", "--top-k", "5", "--json"]) == 0
    japanese = {c["id"]: c["names"]["ja"] for c in registry()["concepts"]}
    predictions = json.loads(capsys.readouterr().out)[0]["predictions"]
    assert len(predictions) == 5
    for prediction in predictions:
        assert prediction["name"] == japanese[prediction["concept"]]


def test_predict_names_the_concept_in_each_of_the_registrys_languages(trained, small, capsys):
    image = next((small / "openmoji-fr" / "vélo").glob("*.png"))
    names = {c["id"]: c["names"] for c in registry()["concepts"]}
    languages = LabelSpace.from_yaml(LABELS / "polyobjects.yaml").languages
    assert len(languages) >= 10
    answers = {}
    for language in languages:
        capsys.readouterr()
        assert main(["predict", str(trained), str(image), "--lang", language, "--top-k", "3", "--json"]) == 0
        predictions = json.loads(capsys.readouterr().out)[0]["predictions"]
        assert [p["name"] for p in predictions] == [names[p["concept"]][language] for p in predictions], language
        answers[language] = predictions[0]["concept"]
    assert len(set(answers.values())) == 1  # the language renames the answer, it does not change it


def test_a_script_hint_to_an_objects_model_is_still_one_line(trained, small, capsys):
    image = next((small / "twemoji-en" / "cat").glob("*.png"))
    fails(capsys, ["predict", trained, image, "--hint", "Deva"], "'Deva'")


def test_the_yardstick_counts_every_held_out_image_per_design_and_family(trained, tmp_path):
    data = tmp_path / "data"
    held = [d.name for d in DESIGNS if d.held_out]
    generate_polyobjects(data, per_class=2, image_size=24, designs=held, concepts=CONCEPTS, progress=False)
    result = held_out_designs(trained, data)
    assert set(result["per_design"]) == {d.source for d in DESIGNS if d.held_out}
    assert all(row["images"] == 2 * len(CONCEPTS) for row in result["per_design"].values())
    assert sum(row["images"] for row in result["per_family"].values()) == 2 * len(CONCEPTS) * len(held)
    for row in [*result["per_design"].values(), *result["per_family"].values()]:
        assert 0 <= row["top1"] <= row["top5"] <= 1
    page = "\n".join(markdown(result))
    assert "| `noto-ja` | 5 | 10 |" in page and "| animals |" in page


def test_the_space_offers_objects_beside_digits_and_names_them_in_each_users_language(trained, small):
    from gradio_client import Client, handle_file

    from polyglot_vision.modeling import ModelArguments, build_image_processor, build_model
    from polyglot_vision.serving import Predictor
    from polyglot_vision.serving.demo import launch, load_predictors_or_message

    digits_args = ModelArguments(model_config=dict(TINY_MODEL))
    digits = Predictor(
        build_model(digits_args, LabelSpace.from_yaml(LABELS / "digits.yaml")),
        build_image_processor(digits_args),
        device="cpu",
    )
    objects, notice = load_predictors_or_message(f" {trained} ")
    assert notice is None and isinstance(objects, Predictor)
    unloadable, notice = load_predictors_or_message(f"{trained},{small / 'no-such-model'}")
    assert unloadable is None and "no-such-model" in notice

    import torch

    threads = torch.get_num_threads()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch([digits, objects], host="127.0.0.1", port=port, block=False, quiet=True)
    torch.set_num_threads(threads)
    try:
        page = json.dumps(demo.config, ensure_ascii=False, default=str)
        assert '"label": "polyobjects"' in page and '"label": "digits"' in page  # one tab each
        client = Client(demo.local_url, verbose=False)
        image = next((small / "twemoji-en" / "cat").glob("*.png"))
        names = {c["id"]: c["names"] for c in registry()["concepts"]}
        languages = objects.languages
        assert len(languages) >= 10
        for language in languages:
            label, _ = client.predict(handle_file(str(image)), language, "", api_name="/predict_1")
            shown = [c["label"] for c in label["confidences"]]
            [expected] = objects.top_k([image], k=5, language=language)
            assert shown == [f"{names[p.concept][language]} ({p.concept})" for p in expected], language
        digit, _ = client.predict(handle_file(str(image)), "fr", "", api_name="/predict")
        assert {c["label"].split(" (")[1].rstrip(")") for c in digit["confidences"]} <= set("0123456789")
    finally:
        demo.close()


def test_the_gray_and_color_ops_take_some_images_colour_away_and_move_the_others_hue():
    import torch

    from polyglot_vision.training.augment import BatchPreprocessor

    torch.manual_seed(0)
    pixels = torch.zeros(64, 3, 8, 8, dtype=torch.uint8)
    pixels[:, 0] = 200  # a red drawing on every image
    gray = BatchPreprocessor([0.5] * 3, [0.5] * 3, "gray", (8, 8))(pixels, augment=True)
    grey_images = (gray.amax(1) - gray.amin(1)).flatten(1).amax(1) < 1e-4
    assert 0 < int(grey_images.sum()) < 64
    color = BatchPreprocessor([0.5] * 3, [0.5] * 3, "color", (8, 8))(pixels, augment=True)
    assert color.shape == pixels.shape and color.min() >= -1 and color.max() <= 1
    assert len({tuple(image[:, 0, 0].round(decimals=2).tolist()) for image in color}) > 10
