"""A model folder is data, never code: hostile or broken checkpoints, a hostile current folder, absurd values.

Each case asserts what a user would check: a marker file that the folder's code would write never appears,
the command stops with status 2 and one line naming the folder and the culprit key or file, and nothing is
built or prepared that the check should have stopped first.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForImageClassification, ViTImageProcessorPil

from polyglot_vision.cli import main

from conftest import CLI, REPO, TINY_MODEL, assert_clean_failure, fails, tiny_recipe, write_yaml

LABELS = ["0", "1", "2"]


def classifier_folder(folder: Path, **config) -> Path:
    """A tiny finished classifier as `save_pretrained` writes it: config.json, model.safetensors, processor."""
    settings = {**TINY_MODEL, **config}
    model = AutoModelForImageClassification.from_config(
        AutoConfig.for_model(
            **settings, id2label=dict(enumerate(LABELS)), label2id={c: i for i, c in enumerate(LABELS)}
        )
    )
    model.save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 16, "width": 16}, do_convert_rgb=True).save_pretrained(folder)
    return folder


def edit_json(path: Path, **changes) -> None:
    settings = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    path.write_text(json.dumps(settings), encoding="utf-8")


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "seven.png"
    Image.new("L", (16, 16), 255).save(path)
    return path


@pytest.fixture
def good_model(tmp_path) -> Path:
    return classifier_folder(tmp_path / "good")


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


def code_asking_folder(folder: Path, marker: Path, filename: str = "config.json", key: str = "auto_map") -> Path:
    """A classifier whose `filename` asks for the folder's own module, which writes `marker` when imported."""
    classifier_folder(folder)
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('the folder ran code')\n"
        "from transformers import ResNetConfig as CustomConfig\n"
        "from transformers import ResNetForImageClassification as CustomModel\n"
        "from transformers import ViTImageProcessorPil as CustomProcessor\n",
        encoding="utf-8",
    )
    requests = {
        "auto_map": {
            "AutoConfig": "custom.CustomConfig",
            "AutoModelForImageClassification": "custom.CustomModel",
            "AutoImageProcessor": "custom.CustomProcessor",
        },
        "custom_pipelines": {"image-classification": {"impl": "custom.CustomPipeline", "pt": ["AutoModel"]}},
    }
    edit_json(folder / filename, **{key: requests[key]})
    return folder


# ---- no code from a model folder, even when the user answers "y" ---------------------------------------


def test_a_folder_asking_for_custom_code_is_refused_without_a_prompt_even_with_y_on_stdin(tmp_path, image, marker):
    folder = code_asking_folder(tmp_path / "custom", marker)
    run = subprocess.run(
        [*CLI, "predict", str(folder), str(image)], input="y\ny\n", capture_output=True, text=True, timeout=300
    )
    assert_clean_failure(run, str(folder), "config.json", "auto_map")
    assert "[y/N]" not in run.stdout + run.stderr
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_evaluate_and_train_refuse_a_folder_asking_for_custom_code_whatever_stdin_says(
    command, polydigits_dir, tmp_path, marker, capsys, monkeypatch
):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\ny\n"))  # what a prompt would read
    folder = code_asking_folder(tmp_path / "custom", marker)
    recipe = tiny_recipe(polydigits_dir, tmp_path / "out")
    if command == "evaluate":
        argv = ["evaluate", folder, "--recipe", write_yaml(tmp_path / "r.yaml", recipe)]
    else:
        recipe.pop("model_config")
        argv = ["train", write_yaml(tmp_path / "r.yaml", {**recipe, "model_name_or_path": str(folder)})]
        monkeypatch.setattr("polyglot_vision.training.run.load_data", lambda *a: pytest.fail("data prepared"))
    fails(capsys, argv, str(folder), "config.json", "auto_map")
    assert "[y/N]" not in capsys.readouterr().out
    assert not marker.exists()


@pytest.mark.parametrize(
    "filename, key", [("preprocessor_config.json", "auto_map"), ("config.json", "custom_pipelines")]
)
def test_custom_code_asked_by_the_processor_or_a_pipeline_is_refused_too(
    filename, key, tmp_path, image, marker, capsys
):
    folder = code_asking_folder(tmp_path / "custom", marker, filename, key)
    fails(capsys, ["predict", folder, image], str(folder), filename, key)
    assert not marker.exists()


def test_the_space_explains_a_folder_asking_for_code_and_keeps_running(tmp_path, marker, capsys):
    pytest.importorskip("gradio")
    from polyglot_vision.serving.demo import build_demo, load_predictor_or_message

    folder = code_asking_folder(tmp_path / "custom", marker)
    predictor, notice = load_predictor_or_message(str(folder))
    assert predictor is None and "auto_map" in notice and str(folder) in notice
    assert notice in str(build_demo(None, notice=notice).config)
    fails(capsys, ["demo", folder], str(folder), "auto_map")  # started with it: refuses in one line
    assert not marker.exists()


def _loads(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
    if name == "pipeline" or (name == "from_pretrained" and owner.startswith("Auto")):
        return f"{owner}.{name}" if owner else name
    return None


def test_every_transformers_load_in_the_code_turns_remote_code_off():
    missing = []
    for path in [*REPO.glob("src/**/*.py"), *REPO.glob("scripts/*.py"), *REPO.glob("space/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _loads(node):
                keywords = {k.arg: k.value for k in node.keywords}
                off = keywords.get("trust_remote_code")
                if not (isinstance(off, ast.Constant) and off.value is False):
                    missing.append(f"{path.relative_to(REPO)}:{node.lineno} {_loads(node)}")
    assert not missing, "without trust_remote_code=False:\n" + "\n".join(missing)


# ---- the metric comes from the installed package, never from the current folder ---------------------


def hostile_metric_folder(folder: Path, marker: Path) -> Path:
    metric = folder / "metrics" / "multilingual_accuracy"
    metric.mkdir(parents=True)
    (metric / "multilingual_accuracy.py").write_text(
        f"open({str(marker)!r}, 'w').write('the current folder ran code')\n", encoding="utf-8"
    )
    return folder


def test_an_installed_package_never_loads_the_metric_of_the_current_folder(tmp_path, marker):
    # The package alone, as a wheel installs it: no repository around it.
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "src" / "polyglot_vision", site / "polyglot_vision", ignore=shutil.ignore_patterns("__pycache__")
    )
    hostile = hostile_metric_folder(tmp_path / "untrusted", marker)
    code = (
        "from polyglot_vision.evaluation import load_metric, metric_path; "
        "print(metric_path()); print(load_metric().compute(predictions=[1, 2], references=[1, 1])['accuracy'])"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=hostile, env=env)
    assert run.returncode == 0, run.stderr[-1500:]
    assert run.stdout.split() == [str(site / "polyglot_vision" / "evaluation" / "multilingual_accuracy"), "0.5"]
    assert not marker.exists()


def test_evaluate_from_a_folder_holding_a_hostile_metric_runs_the_package_metric(
    trained_model, polydigits_dir, tmp_path, marker, monkeypatch, capsys
):
    from polyglot_vision.evaluation import load_metric

    recipe = write_yaml(tmp_path / "r.yaml", tiny_recipe(polydigits_dir, tmp_path / "out"))
    monkeypatch.chdir(hostile_metric_folder(tmp_path / "untrusted", marker))
    load_metric.cache_clear()
    code = main(["evaluate", str(trained_model), "--recipe", str(recipe), "--output-dir", str(tmp_path / "report")])
    assert code == 0, capsys.readouterr().err
    assert "accuracy" in capsys.readouterr().out
    assert not marker.exists()


# ---- pickled weights and every other load failure: one line ----------------------------------------


class Payload:
    """What a pickled `pytorch_model.bin` can carry: a call made while unpickling."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def bin_folder(folder: Path, source: Path, extra=None) -> Path:
    """`source`'s classifier with its weights as `pytorch_model.bin` (a state dict, plus `extra` if given)."""
    shutil.copytree(source, folder)
    state = AutoModelForImageClassification.from_pretrained(source).state_dict()
    if extra is not None:
        state["extra"] = extra
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    return folder


@pytest.mark.parametrize("command", ["predict", "evaluate", "train", "demo"])
def test_pickled_weights_are_one_line_and_never_run(
    command, good_model, polydigits_dir, tmp_path, image, marker, capsys
):
    folder = bin_folder(tmp_path / "pickled", good_model, extra=Payload(marker))
    recipe = tiny_recipe(polydigits_dir, tmp_path / "out")
    argv = {
        "predict": ["predict", folder, image],
        "evaluate": ["evaluate", folder, "--recipe", write_yaml(tmp_path / "r.yaml", recipe)],
        "demo": ["demo", folder],
    }.get(command)
    if argv is None:
        recipe.pop("model_config")
        argv = ["train", write_yaml(tmp_path / "r.yaml", {**recipe, "model_name_or_path": str(folder)})]
    fails(capsys, argv, str(folder), "pytorch_model.bin")
    assert not marker.exists()


def test_plain_tensor_bin_weights_still_load_and_answer_as_the_safetensors(good_model, tmp_path, image):
    from polyglot_vision.serving import Predictor

    folder = bin_folder(tmp_path / "bin", good_model)
    (from_bin,) = Predictor.from_pretrained(folder).top_k([image], k=3)
    (from_safetensors,) = Predictor.from_pretrained(good_model).top_k([image], k=3)
    assert [(p.concept, round(p.score, 5)) for p in from_bin] == [
        (p.concept, round(p.score, 5)) for p in from_safetensors
    ]


def test_a_broken_folder_is_one_line_in_the_cli_and_an_explanation_in_the_space(good_model, tmp_path, image, capsys):
    pytest.importorskip("gradio")
    from polyglot_vision.serving.demo import load_predictor_or_message

    cases = {}
    for name, damage, culprit in [
        ("truncated", lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 64), "model.safetensors"),
        ("no-weights", lambda f: (f / "model.safetensors").unlink(), "no weights file"),
        ("bad-json", lambda f: (f / "config.json").write_text("{not json"), "config.json"),
        ("no-type", lambda f: edit_json(f / "config.json", model_type=None), "model_type"),
        ("unknown-type", lambda f: edit_json(f / "config.json", model_type="no-such-model"), "no-such-model"),
        ("labels-gap", lambda f: edit_json(f / "config.json", id2label={"0": "a", "5": "b", "2": "c"}), "id2label"),
    ]:
        folder = shutil.copytree(good_model, tmp_path / name)
        damage(folder)
        cases[name] = (folder, culprit)
    for folder, culprit in cases.values():
        fails(capsys, ["predict", folder, image], str(folder), culprit)
        predictor, notice = load_predictor_or_message(str(folder))
        assert predictor is None and culprit in notice


# ---- declared sizes: checked before anything is built ----------------------------------------------


def test_a_folder_declaring_400000_blocks_is_refused_before_it_is_built(good_model, image, capsys, monkeypatch):
    edit_json(good_model / "config.json", depths=[1, 400000])
    built = []
    monkeypatch.setattr(
        AutoModelForImageClassification, "from_config", lambda *a, **k: built.append(a) or pytest.fail("built")
    )
    fails(capsys, ["predict", good_model, image], str(good_model), "config.json", "depths", "400,001")
    assert not built


def test_a_weights_index_naming_a_shard_outside_the_folder_is_refused(good_model, image, capsys):
    (good_model / "model.safetensors").rename(good_model / "part-1.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "part-1.safetensors", "b": "../../elsewhere.safetensors"}}
    (good_model / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    fails(capsys, ["predict", good_model, image], str(good_model), "model.safetensors.index.json", "elsewhere")


def test_a_60000_pixel_resize_in_the_processor_is_refused(good_model, image, capsys):
    edit_json(good_model / "preprocessor_config.json", size={"height": 60000, "width": 60000})
    fails(capsys, ["predict", good_model, image], str(good_model), "preprocessor_config.json", "size", "60000")


def test_a_folder_without_id2label_is_one_line(good_model, image, capsys):
    edit_json(good_model / "config.json", id2label=None, label2id=None)
    fails(capsys, ["predict", good_model, image], str(good_model), "id2label")


@pytest.mark.parametrize(
    "change, culprit",
    [
        ({"depths": [1, 3]}, "declares"),  # more blocks than the weights hold
        ({"hidden_sizes": [16, 8]}, "weights do not match"),  # as many values, other shapes
        ({"depths": [1]}, "stage"),  # fewer stages than the config's own stage names
    ],
)
def test_a_config_whose_sizes_disagree_with_its_weights_is_one_line(good_model, image, change, culprit, capsys):
    edit_json(good_model / "config.json", **change)
    fails(capsys, ["predict", good_model, image], str(good_model), "config.json", culprit)


def test_a_recipe_declaring_a_huge_model_or_input_is_refused_before_the_data(write_recipe, capsys, monkeypatch):
    monkeypatch.setattr("polyglot_vision.training.run.load_data", lambda *a: pytest.fail("data prepared"))
    fails(capsys, ["train", write_recipe(), "--image_size", "20000"], "image_size", "20000")
    recipe = write_recipe("deep.yaml", model_config={**TINY_MODEL, "depths": [1, 400000]})
    fails(capsys, ["train", recipe], "model_config", "depths")
    recipe = write_recipe("wide.yaml", model_config={**TINY_MODEL, "hidden_sizes": [8, 60000]})
    fails(capsys, ["train", recipe], "model_config", "parameters")


# ---- training values: one line naming the key, before any data is prepared ---------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("per_device_train_batch_size", "1e308"),
        ("max_steps", "1e30"),
        ("learning_rate", "inf"),
        ("learning_rate", "nan"),
        ("seed", "-1"),
        ("num_train_epochs", "inf"),
        ("weight_decay", "nan"),
        ("gradient_accumulation_steps", "-1e20"),
    ],
)
def test_an_absurd_training_value_is_one_line_before_the_data(write_recipe, key, value, capsys, monkeypatch):
    monkeypatch.setattr("polyglot_vision.training.run.load_data", lambda *a: pytest.fail("data prepared"))
    fails(capsys, ["train", write_recipe(), f"--{key}", value], f"`{key}`")


def test_a_whole_number_in_exponent_form_is_taken_as_that_number(write_recipe):
    from polyglot_vision.training import load_recipe

    recipe = load_recipe(write_recipe(), ["--max_steps", "1e1", "--seed", "7.0"])
    assert recipe.training.max_steps == 10 and isinstance(recipe.training.max_steps, int)
    assert recipe.training.seed == 7 and isinstance(recipe.training.seed, int)


def test_a_source_tree_holding_an_unreadable_path_is_one_line_naming_it(polydigits_dir, tmp_path, capsys):
    unreadable = Path("/proc/1/cwd")
    try:
        unreadable.stat()
        pytest.skip("/proc/1/cwd is readable here")
    except PermissionError:
        pass
    except OSError:
        pytest.skip("no /proc here")
    source = shutil.copytree(polydigits_dir / "latin-fr", tmp_path / "latin-fr")
    (source / "sept" / "elsewhere").symlink_to(unreadable)
    recipe = tiny_recipe(polydigits_dir, tmp_path / "out")
    recipe["sources"] = [{"name": "fr", "path": str(source), "language": "fr"}]
    recipe_path = write_yaml(tmp_path / "r.yaml", recipe)
    fails(capsys, ["align", recipe_path, "--output", tmp_path / "a.yaml"], "'fr'", "elsewhere")
    fails(capsys, ["prepare", recipe_path, "--output", tmp_path / "ds"], "'fr'", "elsewhere")
