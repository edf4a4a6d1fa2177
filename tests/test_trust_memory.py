"""Bounded memory and messages safe to print: hostile or careless inputs, as a user or an attacker hands them in.

A 1-bit PNG of 6,300 × 6,300 pixels is a few kB on disk and 119 MB as RGB: a few of them must cost what one
small image costs. Special files are refused without being waited on or read, recipes cannot expand into
billions of leaves, and names with terminal escape codes or of 200 kB reach the terminal escaped and short.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from polyglot_vision.cli import main

from conftest import CLI, REPO, fails

SIDE = 6300  # 39.7 megapixels: under the Space's 40 MP limit
ESCAPES = "\x1b[2J\x1b]0;owned\x07\r\u202e"  # clear the screen, set the window title, bell, carriage return, RTL
RAW = ("\x1b", "\x07", "\r", "\u202e")  # what must never reach the terminal as such


def big_png(path: Path, side: int = SIDE) -> Path:
    """A 1-bit PNG of `side` × `side` pixels: a dark stroke on white, a few kB on disk."""
    image = Image.new("1", (side, side), 1)
    ImageDraw.Draw(image).rectangle((side // 2 - side // 20, side // 5, side // 2 + side // 20, side * 4 // 5), fill=0)
    image.save(path, optimize=True)
    return path


def small_png(path: Path) -> Path:
    image = Image.new("L", (48, 48), 255)
    ImageDraw.Draw(image).rectangle((21, 8, 27, 40), fill=0)
    image.save(path)
    return path


def run_measured(command: list[str], folder: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run `command`; (its peak resident set in MB, from the kernel's accounting of that child, and its result)."""
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    result = subprocess.CompletedProcess(command, child.returncode, out.read_text(), err.read_text())
    return usage.ru_maxrss / 1024, result


# ---- bounded memory --------------------------------------------------------------------------------------------


def test_forty_megapixel_images_are_decoded_small_under_an_address_space_ceiling(tmp_path):
    """Seven 40 MP images kept decoded at the size a model needs fit in 600 MB of address space (whole: 1.1 GB)."""
    files = [big_png(tmp_path / "bomb.png")]
    Image.new("RGB", (5000, 5000), (250, 240, 230)).save(tmp_path / "photo.jpg", quality=80)
    files += [tmp_path / "photo.jpg"] + [shutil.copy(files[0], tmp_path / f"copy{i}.png") for i in range(5)]
    program = textwrap.dedent(
        """
        import sys
        from polyglot_vision.images import load_image
        kept = [load_image(path, size=160) for path in sys.argv[1:]]
        print(max(max(image.size) for image in kept), min(min(image.size) for image in kept))
        """
    )
    ceiling = 600 << 20

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    run = subprocess.run(
        [sys.executable, "-c", program, *map(str, files)], preexec_fn=limit, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-1500:]
    largest, smallest = map(int, run.stdout.split())
    assert 160 <= smallest and largest < 2 * 160  # at least what the model needs, not much more


def test_predict_on_many_forty_megapixel_pngs_peaks_near_predict_on_one_small_image(trained_model, tmp_path):
    small = small_png(tmp_path / "seven.png")
    bomb = big_png(tmp_path / "bomb.png")
    bombs = [shutil.copy(bomb, tmp_path / f"bomb{i}.png") for i in range(5)]
    base, run = run_measured([*CLI, "predict", str(trained_model), str(small), "--top-k", "1"], tmp_path)
    assert run.returncode == 0, run.stderr[-1500:]
    peak, run = run_measured([*CLI, "predict", str(trained_model), *map(str, bombs), "--top-k", "1"], tmp_path)
    assert run.returncode == 0, run.stderr[-1500:]
    assert len(run.stdout.splitlines()) == 5
    assert peak < base + 400, (base, peak)  # decoded whole, before the first batch, they took 5 × 160 MB more


def test_predict_refuses_a_fifo_without_waiting_for_a_writer(tmp_path, capsys):
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    result = []
    # In a daemon thread: were it to wait for a writer, the test fails instead of hanging the suite.
    reader = threading.Thread(
        target=lambda: result.append(fails(capsys, ["predict", tmp_path / "m", fifo])), daemon=True
    )
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "predict waited on a FIFO"
    assert result and str(fifo) in result[0] and "not a regular file" in result[0]


def test_predict_refuses_a_device_a_sparse_file_and_a_folder_before_reading_them(tmp_path, capsys):
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 30)  # 2 GB that take no room on disk
    model = tmp_path / "no-model"
    fails(capsys, ["predict", model, "/dev/zero"], "/dev/zero", "not a regular file")
    fails(capsys, ["predict", model, sparse], str(sparse), "too large")
    fails(capsys, ["predict", model, tmp_path], str(tmp_path), "folder")


def test_an_image_that_claims_more_pixels_than_allowed_is_refused_from_its_header(tmp_path, capsys):
    header_only = tmp_path / "claims.png"
    big_png(header_only, side=12000)  # 144 MP, over Pillow's bomb limit
    fails(capsys, ["predict", tmp_path / "no-model", header_only], str(header_only), "decompression bomb")


# ---- YAML -------------------------------------------------------------------------------------------------------


def test_a_recipe_with_nested_yaml_aliases_is_refused_in_one_line(write_recipe, tmp_path, capsys):
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"{b}: &{b} [{', '.join(['*' + a] * 10)}]" for a, b in zip("abcdefghi", "bcdefghij")]
    recipe = write_recipe()
    settings = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    del settings["model_config"]
    text = yaml.safe_dump(settings, allow_unicode=True, sort_keys=False)
    text += "model_config:\n" + textwrap.indent("\n".join(laughs), "  ") + "\n"  # 10^10 leaves
    recipe.write_text(text, encoding="utf-8")
    assert len("\n".join(laughs)) < 1000
    fails(capsys, ["train", recipe], str(recipe), "alias")
    fails(capsys, ["prepare", write_recipe(), "--model_config", "{a: &a [1, 2], b: [*a, *a]}"], "alias")
    assert not (tmp_path / "model").exists()


# ---- safe to print ----------------------------------------------------------------------------------------------


@pytest.fixture
def hostile_model(trained_model, tmp_path) -> Path:
    """The tiny model with French names that carry terminal escape codes, and one of 200 kB."""
    model = tmp_path / "hostile-model"
    shutil.copytree(trained_model, model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    names = config["label_display_names"]["fr"]
    for concept in names:
        names[concept] = f"{ESCAPES}{names[concept]}"
    config["label_display_names"]["de"] = {concept: "x" * 200_000 for concept in names}
    (model / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return model


def test_escape_codes_in_file_names_and_labels_are_printed_escaped(hostile_model, tmp_path, capsys):
    image = small_png(tmp_path / f"seven{ESCAPES}.png")
    assert main(["predict", str(hostile_model), str(image), "--lang", "fr"]) == 0
    out = capsys.readouterr().out
    assert out.strip() and not any(c in out for c in RAW) and "\\u001b" in out and "\\u202e" in out
    assert len(out.splitlines()) == 1

    assert main(["predict", str(hostile_model), str(image), "--lang", "fr", "--json"]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in RAW)
    [answer] = json.loads(out)  # still JSON, and the names read back exactly
    assert answer["image"] == str(image) and answer["predictions"][0]["name"].startswith(ESCAPES)

    line = fails(capsys, ["predict", hostile_model, tmp_path / f"gone{ESCAPES}.png"], "gone", "file not found")
    assert not any(c in line for c in RAW) and "\\u001b[2J" in line


def test_a_source_named_with_escape_codes_is_printed_escaped_by_prepare(objects_dir, tmp_path, capsys):
    from conftest import objects_recipe, write_yaml

    settings = objects_recipe(objects_dir, tmp_path / "model", validation_fraction=0.25, test_fraction=0.25)
    settings["sources"][0]["name"] = f"objects{ESCAPES}"
    recipe = write_yaml(tmp_path / "objects.yaml", settings)
    assert main(["prepare", str(recipe), "--output", str(tmp_path / "dataset")]) == 0
    captured = capsys.readouterr()
    assert "objects\\u001b[2J" in captured.out and not any(c in captured.out for c in RAW)
    assert not any(c in captured.err for c in ("\x1b", "\x07", "\u202e"))  # progress bars keep their \r


def test_long_names_are_shortened_in_answers_and_errors(hostile_model, tmp_path, capsys):
    image = small_png(tmp_path / "seven.png")
    assert main(["predict", str(hostile_model), str(image), "--lang", "de", "--top-k", "2"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert len(line) < 1000 and "characters left out" in line
    line = fails(capsys, ["predict", hostile_model, image, "--lang", "x" * 200_000], "--lang", "not a language tag")
    assert len(line) < 1200


# ---- the Space --------------------------------------------------------------------------------------------------


def test_the_space_answers_big_uploads_in_batches_within_a_pixel_budget_and_gives_memory_back(
    trained_model, tmp_path, monkeypatch
):
    from polyglot_vision.serving import Predictor, demo

    predictor = Predictor.from_pretrained(trained_model)
    bomb = big_png(tmp_path / "bomb.png")
    small = small_png(tmp_path / "small.png")
    assert max(demo.read_upload(str(bomb), size=predictor.decode_side).size) < 2 * predictor.decode_side
    assert demo.read_upload(str(bomb)).size == (SIDE, SIDE)  # what the Space decoded for every upload before

    app = demo.build_demo(predictor)
    assert app.delete_cache == demo.UPLOAD_CACHE  # uploads are deleted, not kept forever
    [predict] = [fn.fn for fn in app.fns.values() if fn.api_name == "predict"]
    calls, trims = [], []
    model_call = predictor.class_probabilities
    monkeypatch.setattr(
        predictor, "class_probabilities", lambda images: calls.append(len(images)) or model_call(images)
    )
    monkeypatch.setattr(demo, "give_memory_back", lambda: trims.append(True))

    labels, notes = predict([{"path": str(small)}] * 3, ["fr"] * 3, [""] * 3)
    assert all(labels) and calls == [3] and not trims  # one model call; nothing to give back
    decoded = demo.read_upload(str(bomb), size=predictor.decode_side)
    monkeypatch.setattr(demo, "BATCH_PIXELS", 2 * decoded.width * decoded.height)  # two decoded uploads at most
    calls.clear()
    labels, notes = predict([{"path": str(bomb)}] * 3 + [{"path": str(small)}], ["fr"] * 4, [""] * 4)
    assert all(labels), notes
    assert calls == [2, 2] and trims  # the batch split by its pixels; memory given back after it
