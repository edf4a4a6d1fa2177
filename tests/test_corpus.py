"""Nothing lost, nothing wrong in silence: awkward inputs a new user tries, through the command line.

Each case asserts what a user would check: the exit status, one line naming the culprit and no traceback,
nothing deleted that the tool did not write, nothing half-written left behind, and, where the command
succeeds, the right answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from datasets import load_from_disk
from PIL import Image

from polyglot_vision.cli import main

from conftest import CLI, LABELS, REPO, TINY_MODEL, fails, snapshot, tiny_recipe, write_yaml


def hidden_siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}"))


@pytest.fixture
def digits(polydigits_dir, tmp_path):
    """A recipe over the tiny PolyDigits, written to a file; `digits(**overrides)` -> its path."""

    def write(name="recipe.yaml", **overrides) -> Path:
        return write_yaml(tmp_path / name, tiny_recipe(polydigits_dir, tmp_path / "model", **overrides))

    return write


# ---- never destroy what the tool did not write -------------------------------------------------------


def test_prepare_never_replaces_a_source_folder_or_a_folder_of_someone_else(digits, polydigits_dir, tmp_path, capsys):
    source = polydigits_dir / "latin-fr"
    before = snapshot(source)
    fails(capsys, ["prepare", digits(), "--output", source], "overlaps the source")
    assert snapshot(source) == before

    thesis = tmp_path / "mine"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("three years of work")
    fails(capsys, ["prepare", digits(), "--output", thesis], "thesis.txt", "--overwrite")
    assert (thesis / "thesis.txt").read_text() == "three years of work"
    fails(capsys, ["evaluate", tmp_path, "--recipe", digits(), "--output-dir", thesis], str(tmp_path))

    out = tmp_path / "dataset"
    assert main(["prepare", str(digits()), "--output", str(out)]) == 0
    assert main(["prepare", str(digits()), "--output", str(out)]) == 0  # its own output is replaced
    assert main(["prepare", str(digits()), "--output", str(thesis), "--overwrite"]) == 0
    assert not (thesis / "thesis.txt").exists() and load_from_disk(str(thesis))["train"].num_rows > 0
    assert not hidden_siblings(out)


def test_train_refuses_an_output_dir_that_is_a_file_or_holds_strangers(digits, tmp_path, capsys):
    (tmp_path / "notes").write_text("x")
    fails(capsys, ["train", digits(output_dir=str(tmp_path / "notes"))], "notes", "not a folder")
    fails(capsys, ["train", digits(output_dir=str(tmp_path / "notes" / "model"))], "is a file")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "keep.me").write_text("x")
    fails(capsys, ["train", digits(output_dir=str(stranger))], "keep.me")
    assert (stranger / "keep.me").exists()


# ---- no silent choice between labels -----------------------------------------------------------------


@pytest.fixture
def twice_labelled(polydigits_dir, tmp_path):
    """20 images listed in two manifests: one right, one with every label shifted by one."""
    files = sorted((polydigits_dir / "latin-fr").rglob("*.png"))[::2][:20]
    names = {
        "zéro": 0,
        "un": 1,
        "deux": 2,
        "trois": 3,
        "quatre": 4,
        "cinq": 5,
        "six": 6,
        "sept": 7,
        "huit": 8,
        "neuf": 9,
    }
    truth = {str(f): names[f.parent.name] for f in files}
    for name, shift in (("right", 0), ("shifted", 1)):
        rows = ["file,digit"] + [f"{f},{(d + shift) % 10}" for f, d in truth.items()]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")

    def recipe(*order: str, **overrides) -> Path:
        data = {
            "model_config": dict(TINY_MODEL),
            "label_space": str(LABELS / "digits.yaml"),
            "sources": [
                {
                    "name": n,
                    "path": str(tmp_path / f"{n}.csv"),
                    "language": "en",
                    "image_column": "file",
                    "label_column": "digit",
                    "allow_outside": True,  # the rows name the PolyDigits images where they lie
                }
                for n in order
            ],
            "output_dir": str(tmp_path / "model"),
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
            **overrides,
        }
        return write_yaml(tmp_path / "conflict.yaml", data)

    return recipe, truth


def test_the_same_image_under_two_concepts_is_never_settled_by_recipe_order(twice_labelled, tmp_path, capsys):
    recipe, truth = twice_labelled
    for order in (("shifted", "right"), ("right", "shifted")):
        fails(
            capsys,
            ["prepare", recipe(*order), "--output", tmp_path / "ds"],
            "label conflict: 20 image(s)",
            "on_label_conflict",
        )
    assert not (tmp_path / "ds").exists()

    assert (
        main(
            [
                "prepare",
                str(recipe("shifted", "right", on_label_conflict="prefer:right")),
                "--output",
                str(tmp_path / "ds"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "label conflicts: 20 image(s) under two concepts; 20 copies left out" in printed
    train = load_from_disk(str(tmp_path / "ds"))["train"]
    assert len(train) == 20 and sorted(train["label"]) == sorted(truth.values())

    fails(
        capsys,
        ["prepare", recipe("shifted", "right", on_label_conflict="drop"), "--output", tmp_path / "ds"],
        "no images left",
        "20 label conflicts",
    )  # nothing left to train on: one clear line
    fails(
        capsys,
        ["prepare", recipe("right", "shifted", on_label_conflict="prefer:nobody")],
        "on_label_conflict",
        "nobody",
    )


# ---- one image loader for training, evaluation, prediction and the Space --------------------------------


def test_predict_reads_a_png_an_alpha_png_and_an_exif_rotated_jpeg_alike(
    trained_model, polydigits_dir, tmp_path, capsys
):
    seven = Image.open(sorted((polydigits_dir / "latin-fr" / "sept").glob("*.png"))[0]).convert("L")
    plain = tmp_path / "plain.png"
    seven.save(plain)
    alpha = Image.new("RGBA", seven.size, (0, 0, 0, 0))
    alpha.putalpha(Image.eval(seven, lambda v: 255 - v))  # black ink whose opacity draws the digit
    alpha.save(tmp_path / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned a quarter clockwise; shown upright
    seven.convert("RGB").rotate(-90, expand=True).save(tmp_path / "rotated.jpg", quality=100, subsampling=0, exif=exif)
    files = [plain, tmp_path / "alpha.png", tmp_path / "rotated.jpg"]
    assert main(["predict", str(trained_model), *map(str, files), "--json", "--top-k", "1"]) == 0
    answers = [row["predictions"][0] for row in json.loads(capsys.readouterr().out)]
    assert len({a["concept"] for a in answers}) == 1
    assert max(a["score"] for a in answers) - min(a["score"] for a in answers) <= 0.001, answers


# ---- every value checked before anything runs ----------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, culprit",
    [
        ({"num_train_epochs": 0, "max_steps": -1}, "num_train_epochs"),
        ({"num_train_epochs": -1, "max_steps": -1}, "num_train_epochs"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
        ({"per_device_train_batch_size": -4}, "per_device_train_batch_size"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"max_steps": 2.5}, "max_steps"),
        ({"validation_fraction": 0.0, "eval_strategy": "epoch"}, "validation split"),
        ({"model_config": {**TINY_MODEL, "hidden_sizes": "big"}}, "hidden_sizes"),
        ({"model_config": {**TINY_MODEL, "depths": 2.5}}, "depths"),
        ({"resume_from_checkpoint": "/no/such/checkpoint-9"}, "resume_from_checkpoint"),
    ],
)
def test_training_values_that_cannot_work_stop_before_anything_is_written(
    digits, tmp_path, capsys, overrides, culprit
):
    fails(capsys, ["train", digits(**overrides)], culprit)
    assert not (tmp_path / "model").exists()


def test_max_steps_from_the_command_line_must_be_whole(digits, capsys):
    fails(capsys, ["train", digits(), "--max_steps", "2.5"], "max_steps")


# ---- images and labels that vanish: counted, or one clear line ---------------------------------------


def folder_recipe(tmp_path: Path, folder: Path, *extra_sources: dict, **overrides) -> Path:
    """A digits recipe over one image folder labelled in French (and any further sources)."""
    sources = [{"name": "photos", "path": str(folder), "language": "fr"}, *extra_sources]
    data = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(LABELS / "digits.yaml"),
        "output_dir": str(tmp_path / "m"),
        "sources": sources,
        **overrides,
    }
    return write_yaml(tmp_path / "r.yaml", data)


def copied(source: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(source, folder)
    return folder


def test_a_folder_holding_a_manifest_and_images_is_not_read_as_either(polydigits_dir, tmp_path, capsys):
    folder = copied(polydigits_dir / "latin-fr", tmp_path)
    (folder / "notes.csv").write_text("file,label\nsept/00001.png,sept\n")
    fails(capsys, ["prepare", folder_recipe(tmp_path, folder)], "photos", "notes.csv", "manifest")


def test_unlabelled_rows_and_files_without_an_image_ending_are_counted_on_the_console(
    polydigits_dir, tmp_path, capsys
):
    folder = copied(polydigits_dir / "latin-fr", tmp_path)
    shutil.copy(next((folder / "sept").glob("*.png")), folder / "sept" / "scan-without-ending")
    files = sorted((polydigits_dir / "latin-de").rglob("*.png"))[:6]
    rows = ["file,digit"] + [f"{f},{i}" for i, f in enumerate(files[:4])] + [f"{files[4]},", f"{files[5]},nan"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    csv = {
        "name": "csv",
        "path": str(tmp_path / "m.csv"),
        "language": "en",
        "image_column": "file",
        "label_column": "digit",
        "allow_outside": True,  # the rows name the PolyDigits images where they lie
    }
    recipe = folder_recipe(tmp_path, folder, csv, validation_fraction=0.0, test_fraction=0.0)
    assert main(["prepare", str(recipe), "--output", str(tmp_path / "ds")]) == 0
    printed = capsys.readouterr().out
    table = {
        line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.split()[:1] in (["photos"], ["csv"])
    }
    assert table["csv"][:2] == ["6", "2"]  # read 6, 2 without a label
    assert table["photos"][0] == "41" and table["photos"][3] == "1"  # the file without an ending is counted as bad
    assert "sept/scan-without-ending (not an image file)" in printed


def test_a_class_folder_named_like_a_split_is_named(polydigits_dir, tmp_path, capsys):
    folder = copied(polydigits_dir / "latin-fr", tmp_path)
    (folder / "sept").rename(folder / "test")
    fails(capsys, ["prepare", folder_recipe(tmp_path, folder)], "photos", "test", "named like splits")


def test_a_folder_of_one_class_says_what_an_image_folder_needs(polydigits_dir, tmp_path, capsys):
    shutil.copytree(polydigits_dir / "latin-fr" / "sept", tmp_path / "photos" / "sept")
    fails(capsys, ["prepare", folder_recipe(tmp_path, tmp_path / "photos")], "photos", "two class sub-folders")


def test_an_unquoted_norwegian_language_is_named(digits, tmp_path, capsys):
    recipe = yaml.safe_load(digits().read_text())
    recipe["sources"][0]["language"] = False  # what YAML makes of `language: no`
    fails(capsys, ["prepare", write_yaml(tmp_path / "no.yaml", recipe)], "language", "quote it")


# ---- prediction, evaluation and push ---------------------------------------------------------------------


@pytest.mark.parametrize("lang, expected", [("FR", "sept"), ("pt_BR", "sete"), ("ZH", "七"), ("sw", None)])
def test_language_tags_are_read_whatever_their_case(trained_model, polydigits_dir, capsys, lang, expected):
    seven = sorted((polydigits_dir / "latin-fr" / "sept").glob("*.png"))[0]
    assert main(["predict", str(trained_model), str(seven), "--lang", lang, "--json", "--top-k", "10"]) == 0
    out = capsys.readouterr()
    names = {p["concept"]: p["name"] for p in json.loads(out.out)[0]["predictions"]}
    if expected:
        assert names["7"] == expected and "polyglot-vision" not in out.err
    else:  # no Swahili names in the registry: said on the console, answered in the default language
        assert "no names in 'sw'" in out.err and names["7"] == "seven"


def test_bad_prediction_requests_are_one_line(trained_model, tmp_path, capsys):
    png = tmp_path / "x.png"
    Image.new("L", (32, 32), 255).save(png)
    fails(capsys, ["predict", trained_model, png, "--lang", "xx"], "--lang", "xx")
    fails(capsys, ["predict", trained_model, png, "--top-k", "0"], "--top-k")
    fails(capsys, ["predict", trained_model, tmp_path], str(tmp_path), "folder")


def test_evaluate_refuses_an_empty_split_and_a_folder_as_json_output(trained_model, digits, tmp_path, capsys):
    fails(
        capsys,
        [
            "evaluate",
            trained_model,
            "--recipe",
            digits(validation_fraction=0.0),
            "--split",
            "validation",
            "--output-dir",
            tmp_path / "report",
        ],
        "validation",
        "empty",
    )
    assert not (tmp_path / "report").exists()
    (tmp_path / "json").mkdir()
    fails(
        capsys, ["evaluate", trained_model, "--recipe", digits(), "--output", tmp_path / "json"], "--output", "folder"
    )


def test_evaluate_with_a_recipe_that_keeps_new_labels_says_the_labels_differ(trained_model, digits, tmp_path, capsys):
    recipe = yaml.safe_load(digits().read_text())
    recipe["sources"][0]["label_map"] = {"0": "0"}
    recipe["unmapped_labels"] = "keep"
    recipe["label_space"] = str(
        write_yaml(
            tmp_path / "few.yaml",
            {"name": "few", "concepts": [{"id": str(i), "names": {"en": str(i)}} for i in range(5)]},
        )
    )
    fails(capsys, ["evaluate", trained_model, "--recipe", write_yaml(tmp_path / "keep.yaml", recipe)], "labels")


def test_push_dry_run_checks_the_folder_and_the_repository_id(trained_model, tmp_path, capsys):
    fails(capsys, ["push", tmp_path, "--repo-id", "org/name", "--dry-run"], str(tmp_path), "config.json")
    fails(capsys, ["push", trained_model, "--repo-id", "not a valid id!", "--dry-run"], "--repo-id")


# ---- a kill at any point leaves the previous output or the new one, whole ---------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys, importlib
    module, attribute = sys.argv[1].split(":")
    *path, name = attribute.split(".")
    target = importlib.import_module(module)
    for part in path:
        target = getattr(target, part)
    def kill(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(target, name, kill)
    from polyglot_vision.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def killed_at(function: str, *argv) -> None:
    run = subprocess.run(
        [sys.executable, "-c", KILLER, function, *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert run.returncode == -9, (function, run.returncode, run.stderr[-1500:])


@pytest.mark.parametrize(
    "point",
    [
        "datasets:DatasetDict.save_to_disk",
        "polyglot_vision.cli:write_dataset_card",
        "polyglot_vision.outputs:_exchange",
    ],
)
def test_a_killed_prepare_leaves_the_previous_dataset_whole(digits, tmp_path, point):
    out = tmp_path / "ds"
    assert subprocess.run([*CLI, "prepare", str(digits()), "--output", str(out)], capture_output=True).returncode == 0
    before = snapshot(out)
    killed_at(point, "prepare", digits(), "--output", out)
    assert snapshot(out) == before
    assert subprocess.run([*CLI, "prepare", str(digits()), "--output", str(out)], capture_output=True).returncode == 0
    assert not hidden_siblings(out)  # the next run cleans what the killed one left


@pytest.mark.parametrize(
    "point", ["polyglot_vision.training.run:write_model_card", "polyglot_vision.outputs:_exchange"]
)
def test_a_run_killed_while_exporting_leaves_the_previous_model_whole(trained_model, digits, tmp_path, point):
    model = tmp_path / "model"
    import shutil

    shutil.copytree(trained_model, model)
    before = snapshot(model)
    killed_at(point, "train", digits(seed=7))
    assert snapshot(model) == before
    run = subprocess.run([*CLI, "train", str(digits(seed=7))], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-1500:]
    assert snapshot(model) != before and (model / "model.safetensors").is_file() and (model / "README.md").is_file()
    assert not hidden_siblings(model)
    assert os.path.getsize(model / "preprocessor_config.json") > 0
