"""Answers that know their limits: strangers refused, twins named both without a hint, one with it."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from polyglot_vision.builtin_data.fonts import NUMERALS
from polyglot_vision.builtin_data.strangers import KINDS, LETTERS, SYMBOLS
from polyglot_vision.cli import main
from polyglot_vision.errors import UserError
from polyglot_vision.labels import LabelSpace
from polyglot_vision.serving import Predictor

from conftest import REPO, tiny_recipe, write_yaml

LABELS = REPO / "recipes" / "labels"


@pytest.fixture(scope="module")
def model(polydigits_dir, tmp_path_factory) -> Path:
    """The quickstart recipe (digits and `none`, concept·script head) trained a few steps on the tiny PolyDigits."""
    out = tmp_path_factory.mktemp("refusal") / "model"
    recipe = write_yaml(out.parent / "recipe.yaml", tiny_recipe(polydigits_dir, out, strangers=True))
    assert main(["train", str(recipe)]) == 0
    return out


def _config(model: Path) -> dict:
    return json.loads((model / "config.json").read_text(encoding="utf-8"))


def _with_config(model: Path, where: Path, **fields) -> Path:
    """A copy of the model folder whose config.json has `fields` changed."""
    shutil.copytree(model, where)
    config = {**_config(model), **fields}
    (where / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return where


def _predict_json(capsys, argv) -> list[dict]:
    assert main(["predict", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def page(tmp_path) -> Path:
    path = tmp_path / "white.png"
    Image.new("RGB", (40, 40), "white").save(path)
    return path


def test_polydigits_draws_strangers_of_every_kind_labelled_none_in_no_language(polydigits_dir):
    import datasets

    sources = yaml.safe_load((polydigits_dir / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    [entry] = [e for e in sources if e["name"] == "strangers"]
    assert (entry["language"], entry["script"]) == ("zxx", "Zyyy")
    data = datasets.load_dataset("parquet", data_files=str(polydigits_dir / entry["path"]), split="train")
    assert len(data) == 20 * 4 and set(data["label"]) == {"none"} and set(data["kind"]) == set(KINDS)
    assert "## Strangers" in (polydigits_dir / "README.md").read_text(encoding="utf-8")


def test_strangers_never_draw_a_numeral_or_a_numeral_look_alike():
    drawn = set(LETTERS) | set(SYMBOLS)
    assert not drawn & set("".join(NUMERALS.values()))
    assert not any(unicodedata.decimal(ch, None) is not None for ch in drawn)
    assert not drawn & set("OoIl|/\\()gqVv^-_~.,'\"·")  # zeros, ones, nines, ٧ ٨, 一, ٠
    assert set("AB?!") <= drawn  # what looks like a digit only in some hands is a stranger
    assert sum(KINDS.values()) == pytest.approx(1.0)


def _printed_clean(png: bytes) -> bool:
    """Pure white paper: most light pixels (all but those near the ink) are exactly white."""
    import io

    import numpy as np

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    light = pixels[pixels > 128]
    return bool((light == 255).mean() > 0.6)


def test_a_share_of_strangers_and_of_numerals_is_printed_clean_so_a_clean_page_means_nothing():
    import numpy as np

    from polyglot_vision.builtin_data.polydigits import DEFAULT_SYNTHESIS, SCRIPT_FONTS, render_digit
    from polyglot_vision.builtin_data.strangers import draw_strangers

    letters, _ = draw_strangers(120, seed=5, kinds=("letters", "symbols"))
    clean_letters = sum(map(_printed_clean, letters)) / len(letters)
    fonts = SCRIPT_FONTS["latn"][0]
    digits = [
        render_digit("latn", i % 10, np.random.default_rng(i), 48, fonts, frozenset(DEFAULT_SYNTHESIS))
        for i in range(120)
    ]
    clean_digits = sum(map(_printed_clean, digits)) / len(digits)
    assert 0.12 <= clean_letters <= 0.4 and 0.12 <= clean_digits <= 0.4
    # a yardstick can ask for none of them, or all of them
    assert not any(map(_printed_clean, draw_strangers(40, seed=5, kinds=("letters",), clean_share=0)[0]))
    assert all(map(_printed_clean, draw_strangers(40, seed=5, kinds=("letters",), clean_share=1)[0]))


def test_the_refusal_registry_adds_none_to_the_digits_and_the_registry_checks_its_words(tmp_path):
    space = LabelSpace.from_yaml(LABELS / "digits-or-none.yaml")
    assert space.ids == [*"0123456789", "none"] and space.refusal_ids == ["none"]
    assert space.display_name("none", "fr") == "pas un chiffre que je connais"
    assert (("4", "Beng"), ("8", "Latn")) in space.twins  # declared in digits.yaml, which it extends
    concepts = [{"id": "7", "names": {"en": "seven"}}]
    with pytest.raises(UserError, match="twins"):
        LabelSpace.from_dict({"name": "x", "concepts": concepts, "twins": [["7@Latn", "9@Nowhere"]]})
    with pytest.raises(UserError, match="refusal"):
        LabelSpace.from_dict({"name": "x", "concepts": [{"id": "n", "refusal": "yes"}]})


def test_a_model_trained_with_the_strangers_exports_its_refusal_class_and_pipeline_loads_it(model):
    from transformers import pipeline

    config = _config(model)
    assert "none@Zyyy" in config["id2label"].values() and config["refusal_concepts"] == ["none"]
    assert 0.3 <= config["refusal_threshold"] <= 0.6
    assert ["4@Beng", "8@Latn"] in config["label_twins"]
    card = (model / "README.md").read_text(encoding="utf-8")
    assert "## Refused images and twins" in card and "not a numeral I know" in card

    image = Image.new("RGB", (40, 40), "white")
    classify = pipeline("image-classification", model=str(model))
    scores = {r["label"]: r["score"] for r in classify(image, top_k=len(config["id2label"]))}
    predictor = Predictor.from_pretrained(model)
    [answer] = predictor.top_k(image, k=3)
    assert "none" not in [p.concept for p in answer]  # never an answer
    for prediction in answer:  # the scores are pipeline()'s, summed over scripts
        summed = sum(s for label, s in scores.items() if label.split("@")[0] == prediction.concept)
        assert prediction.score == pytest.approx(summed, abs=1e-5)
    assert answer.refusal_score == pytest.approx(scores["none@Zyyy"], abs=1e-5)


def test_predict_json_says_refused_with_a_reason_in_the_users_language(model, page, tmp_path, capsys):
    refusing = _with_config(model, tmp_path / "refusing", refusal_threshold=1e-9)
    [answer] = _predict_json(capsys, [refusing, page, "--lang", "fr"])
    assert answer["refused"] is True and answer["reason"].startswith("pas un chiffre que je connais")
    assert answer["twin"] is None and "none" not in [p["concept"] for p in answer["predictions"]]

    assert main(["predict", str(refusing), str(page)]) == 0
    assert "refused: not a numeral I know" in capsys.readouterr().out

    accepting = _with_config(model, tmp_path / "accepting", refusal_threshold=1.01)
    [answer] = _predict_json(capsys, [accepting, page])
    assert answer["refused"] is False and answer["reason"] is None and answer["predictions"]


def _probabilities(model: Path, **shares) -> torch.Tensor:
    config = _config(model)
    row = torch.zeros(len(config["id2label"]))
    for label, share in shares.items():
        row[config["label2id"][label.replace("_", "@")]] = share
    return row


def test_without_a_hint_twins_are_both_named_and_with_one_a_single_answer(model, page, monkeypatch, capsys):
    row = _probabilities(model, **{"4_Beng": 0.55, "8_Latn": 0.30, "4_Deva": 0.15})
    monkeypatch.setattr(Predictor, "class_probabilities", lambda self, images: row.repeat(len(images), 1))

    [answer] = _predict_json(capsys, [model, page])
    assert answer["answer"] == "4 (Bangla) or 8 (Latin)" and answer["refused"] is False
    assert answer["twin"]["concept"] == "8" and answer["twin"]["script"] == "Latn"
    assert answer["twin"]["score"] == pytest.approx(0.30)
    assert main(["predict", str(model), str(page), "--lang", "fr"]) == 0
    assert "4 (Bangla) or 8 (Latin)" in capsys.readouterr().out

    for hint in ("Beng", "bn"):
        [answer] = _predict_json(capsys, [model, page, "--hint", hint])
        assert answer["answer"] == "4 (Bangla)" and answer["twin"] is None


def test_an_undeclared_pair_is_named_both_only_when_the_model_is_split_between_them(model, page, monkeypatch, capsys):
    predictor = Predictor.from_pretrained(model)
    split = _probabilities(model, **{"1_Deva": 0.6, "9_Latn": 0.4}).unsqueeze(0)
    [answer] = predictor.rank(split, 3, "en")
    assert answer.text == "1 (Devanagari) or 9 (Latin)"
    sure = _probabilities(model, **{"1_Deva": 0.9, "9_Latn": 0.1}).unsqueeze(0)
    [answer] = predictor.rank(sure, 3, "en")
    assert answer.text == "1 (Devanagari)" and answer.twin is None


def test_the_space_shows_not_a_numeral_i_know_in_the_chosen_language(model, tmp_path):
    pytest.importorskip("gradio")
    from polyglot_vision.serving.demo import _answer_note, _labels

    predictor = Predictor.from_pretrained(_with_config(model, tmp_path / "refusing", refusal_threshold=1e-9))
    [answer] = predictor.top_k(Image.new("RGB", (40, 40), "white"), language="de")
    assert list(_labels(answer, predictor, "de")) == ["keine Ziffer, die ich kenne (none)"]
    assert _answer_note(answer).startswith("Refused: keine Ziffer, die ich kenne")
