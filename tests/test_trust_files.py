"""Nothing leaves the folder it belongs to, and nothing is lost: hostile and careless inputs, through the tool.

A private file that must never be read or listed (a FIFO where reading would hang), a user's file that must
never change, links planted where the tool writes, two writers of one output, a token that must never reach
the disk, markup in names that must stay text.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from filelock import FileLock
from PIL import Image

from polyglot_vision.cli import main

from conftest import CLI, LABELS, TINY_MODEL, fails, tiny_recipe, write_yaml

SECRET = "hf_PrivateTokenNeverOnDisk0123456789"


def private_file(tmp_path: Path, name: str = "id_rsa") -> Path:
    """A file of the user's that the tool must never read: a FIFO, so that any read would hang the test."""
    folder = tmp_path / "home" / ".ssh"
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / name)
    return folder / name


def user_file(tmp_path: Path, name: str = ".bashrc", text: str = "export PATH=$HOME/bin:$PATH\n") -> Path:
    path = tmp_path / "home" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- push: only the tool's regular files inside the model folder ---------------------------------------


def model_folder(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "evaluation-test").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "README.md").write_text("# model\n")
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "evaluation-test" / "report.md").write_text("# report\n")
    (model / "training_args.bin").write_bytes(b"state")
    return model


def test_push_never_lists_nor_uploads_a_file_through_a_link(tmp_path, capsys, monkeypatch):
    from polyglot_vision.export import hub

    model = model_folder(tmp_path)
    secret = private_file(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text('{"stolen": true}')
    (model / "metrics.json").symlink_to(secret)
    (model / "x_results.json").symlink_to(secret)
    (model / "test_results.json").symlink_to(elsewhere / "metrics.json")
    (model / "evaluation-validation").symlink_to(elsewhere, target_is_directory=True)
    (model / "notes.txt").write_text("my notes")

    assert main(["push", str(model), "--repo-id", "org/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    uploaded = {line.split()[1] for line in out[:-1] if line.startswith("upload")}
    skipped = {line.split()[1]: line for line in out[:-1] if line.startswith("skip")}
    assert uploaded == {"README.md", "config.json", "model.safetensors", "evaluation-test/report.md"}
    for name in ("metrics.json", "x_results.json", "test_results.json", "evaluation-validation"):
        assert "link" in skipped[name], skipped[name]
    assert "training_args.bin" in skipped and "notes.txt" in skipped
    assert out[-1] == "4 files would be pushed to org/tiny"

    sent = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            return f"https://huggingface.co/{repo_id}"

        def create_commit(self, repo_id, operations, **kwargs):
            for op in operations:
                handle = op.path_or_fileobj
                sent[op.path_in_repo] = handle.read() if hasattr(handle, "read") else Path(handle).read_bytes()

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    hub.push_model(model, "org/tiny")
    assert set(sent) == uploaded and b"stolen" not in b"".join(sent.values())


# ---- manifests: files inside the manifest's own folder tree ---------------------------------------------


def digit_png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 12), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path)


@pytest.fixture
def manifest(tmp_path):
    """A CSV manifest of 20 images of the 10 digits beside it; `manifest(extra_rows, **source)` -> recipe path."""

    def write(extra: list[tuple[str, str]] = (), **source) -> Path:
        folder = tmp_path / "data"
        rows = []
        for i in range(20):
            digit_png(folder / "images" / f"{i}.png", i)
            rows.append((f"images/{i}.png", str(i % 10)))
        rows += list(extra)
        (folder / "manifest.csv").write_text("image,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
        recipe = {
            "model_config": dict(TINY_MODEL),
            "label_space": str(LABELS / "digits.yaml"),
            "sources": [{"name": "scans", "path": str(folder / "manifest.csv"), "language": "en", **source}],
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
            "output_dir": str(tmp_path / "model"),
            "dataset_dir": str(tmp_path / "dataset"),
        }
        return write_yaml(tmp_path / "recipe.yaml", recipe)

    return write


@pytest.fixture
def never_hangs():
    """Reading the FIFO of `private_file` would block: the alarm turns that into a failure instead of a hang."""

    def hung(signum, frame):
        raise TimeoutError("the command blocked reading a file it must never read")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_manifest_row_outside_its_folder_stops_prepare_in_one_line_and_is_never_read(
    manifest, tmp_path, capsys, never_hangs
):
    secret = private_file(tmp_path, "private.png")
    link = tmp_path / "data" / "images" / "innocent.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    for row in (str(secret), "../home/.ssh/private.png", "images/innocent.png"):
        fails(capsys, ["prepare", manifest([(row, "3")])], "row 21", row, "allow_outside")
        assert not (tmp_path / "dataset").exists()


def test_a_source_that_allows_outside_files_reads_regular_files_only_and_counts_them(
    manifest, tmp_path, capsys, never_hangs
):
    outside = tmp_path / "shared" / "three.png"
    digit_png(outside, 99)
    fifo = private_file(tmp_path, "fifo.png")
    recipe = manifest([(str(outside), "3")], allow_outside=True)
    assert main(["prepare", str(recipe)]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "dataset" / "alignment_report.json").read_text(encoding="utf-8"))
    assert report["sources"]["scans"]["outside_files"] == 1
    assert "allow_outside" in (tmp_path / "dataset" / "README.md").read_text(encoding="utf-8")
    assert "allow_outside" in (tmp_path / "dataset" / "alignment_report.md").read_text(encoding="utf-8")

    recipe = manifest([(str(fifo), "3")], allow_outside=True)
    fails(capsys, ["prepare", recipe, "--output", tmp_path / "other"], "not a regular file", str(fifo))


def test_a_streamed_manifest_is_checked_row_by_row_before_a_file_is_read(manifest, tmp_path):
    from polyglot_vision.data.sources import SourceConfig, load_source
    from polyglot_vision.errors import UserError

    secret = private_file(tmp_path, "private.png")
    manifest([(str(secret), "3")])
    path = tmp_path / "data" / "manifest.csv"
    source = SourceConfig.from_dict({"name": "scans", "path": str(path), "language": "en"}, 0)
    with pytest.raises(UserError, match="row 21"):
        list(load_source(source, streaming=True))


# ---- reviewed alignments: contradictions and another registry are refused --------------------------------


def test_a_review_that_accepts_one_label_as_two_concepts_is_refused_naming_the_label(manifest, tmp_path, capsys):
    recipe = manifest()
    review = tmp_path / "alignment.yaml"
    labels = [{"label": "3", "decision": "accepted", "concept": "3"}]
    labels += [{"label": "3", "decision": "accepted", "concept": "8"}]
    write_yaml(review, {"sources": {"scans": {"labels": labels}}})
    fails(capsys, ["prepare", recipe, "--alignment_file", review], "'3'", "decided twice", str(review))


def test_a_review_written_against_another_registry_is_refused(manifest, tmp_path, capsys):
    recipe = manifest()
    review = tmp_path / "alignment.yaml"
    assert main(["align", str(recipe), "--output", str(review)]) == 0
    data = yaml.safe_load(review.read_text(encoding="utf-8"))
    assert data["registry"]["name"] == "digits"
    assert main(["prepare", str(recipe), "--alignment_file", str(review)]) == 0  # the same registry reads back
    capsys.readouterr()
    other = yaml.safe_load((LABELS / "digits.yaml").read_text(encoding="utf-8"))
    other["concepts"] = other["concepts"][:9]  # a registry of the same name without the concept "9"
    write_yaml(tmp_path / "other.yaml", other)
    fails(
        capsys,
        [
            "prepare",
            recipe,
            "--alignment_file",
            review,
            "--label_space",
            tmp_path / "other.yaml",
            "--unmapped_labels",
            "drop",
        ],
        str(review),
        "reviewed against",
    )


# ---- temporaries: unpredictable, never through a link, only the tool's own removed ----------------------


def dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_links_planted_at_temporary_names_are_never_followed_nor_removed(tmp_path):
    from polyglot_vision.outputs import atomic_directory, make_temp_dir, write_json, write_text

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "README.md").write_text("their card")
    bashrc = user_file(tmp_path)
    out = tmp_path / "out"
    pid = dead_pid()
    planted = {
        ".out.tmp": bashrc,
        ".out.tmp-export": victim,
        f".out.tmp-{pid}-abcdef": victim,
        f".out.old-{pid}-abcdef": victim,
        ".report.json.tmp": bashrc,
    }
    for name, target in planted.items():
        (tmp_path / name).symlink_to(target)
    stranger = tmp_path / f".out.tmp-{pid}-planted"  # a real folder, without the tool's token
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    ours = make_temp_dir(out)  # a temporary of ours left by a killed run
    os.rename(ours, tmp_path / f".out.tmp-{pid}-leftover")

    with atomic_directory(out) as tmp:
        write_text(tmp / "README.md", "new card")
    write_json(tmp_path / "report.json", {"a": 1})

    assert (out / "README.md").read_text() == "new card" and not (out / "README.md").is_symlink()
    assert not out.is_symlink() and sorted(p.name for p in out.iterdir()) == [".polyglot-vision", "README.md"]
    assert (victim / "README.md").read_text() == "their card" and sorted(os.listdir(victim)) == ["README.md"]
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"
    assert all((tmp_path / name).is_symlink() for name in planted)
    assert (stranger / "keep.txt").read_text() == "mine"
    assert not (tmp_path / f".out.tmp-{pid}-leftover").exists()  # the tool's own leftover is cleaned


def test_write_text_replaces_a_link_at_its_target_name_not_the_file_behind_it(tmp_path):
    from polyglot_vision.outputs import write_text

    bashrc = user_file(tmp_path)
    (tmp_path / "notes.md").symlink_to(bashrc)
    write_text(tmp_path / "notes.md", "hello")
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"
    assert not (tmp_path / "notes.md").is_symlink() and (tmp_path / "notes.md").read_text() == "hello"


# ---- single-file outputs replace only a file the tool wrote --------------------------------------------


def test_evaluate_never_replaces_a_file_it_did_not_write(write_recipe, tmp_path, capsys):
    bashrc = user_file(tmp_path)
    before = bashrc.read_bytes()
    recipe = write_recipe()
    fails(capsys, ["evaluate", tmp_path / "no-model", "--recipe", recipe, "--output", bashrc], str(bashrc))
    assert bashrc.read_bytes() == before
    (tmp_path / "metrics.json").symlink_to(bashrc)
    fails(capsys, ["evaluate", tmp_path / "no-model", "--recipe", recipe, "--output", tmp_path / "metrics.json"])
    assert bashrc.read_bytes() == before


def test_a_metrics_file_the_tool_wrote_is_replaced_and_another_only_with_overwrite(tmp_path):
    from polyglot_vision.errors import UserError
    from polyglot_vision.outputs import write_owned_json

    path = tmp_path / "metrics.json"
    write_owned_json(path, {"test": {"accuracy": 0.5}})
    write_owned_json(path, {"test": {"accuracy": 0.9}})
    assert json.loads(path.read_text())["test"]["accuracy"] == 0.9
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"test": 1}')
    with pytest.raises(UserError, match="did not write"):
        write_owned_json(theirs, {"test": {}})
    assert theirs.read_text() == '{"test": 1}'
    write_owned_json(theirs, {"test": {}}, overwrite=True)
    assert json.loads(theirs.read_text())["test"] == {}


# ---- one writer per output ------------------------------------------------------------------------------


def test_a_second_run_into_an_output_being_written_is_refused_in_one_line(manifest, write_recipe, tmp_path, capsys):
    recipe = manifest()
    dataset = tmp_path / "dataset"
    with FileLock(tmp_path / ".dataset.lock", timeout=0):  # the first run, still writing
        fails(capsys, ["prepare", recipe], str(dataset), "another polyglot-vision run")
        fails(capsys, ["polydigits", dataset, "--per-class", "1"], str(dataset), "another polyglot-vision run")
    assert not dataset.exists()
    model = tmp_path / "model"
    with FileLock(tmp_path / ".model.lock", timeout=0):
        fails(capsys, ["train", write_recipe("train.yaml")], str(model), "another polyglot-vision run")
    assert main(["prepare", str(recipe)]) == 0  # once the first run is over
    assert not (tmp_path / ".dataset.lock").exists()


def test_two_processes_training_into_one_folder_one_is_refused(polydigits_dir, tmp_path):
    recipe = write_yaml(tmp_path / "recipe.yaml", tiny_recipe(polydigits_dir, tmp_path / "model"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from polyglot_vision.outputs import output_lock\n"
            f"with output_lock({str(tmp_path / 'model')!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        run = subprocess.run([*CLI, "train", str(recipe)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "another polyglot-vision run" in run.stderr, run.stderr[-1500:]
    finally:
        holder.kill()
        holder.wait()


# ---- no token on disk; temporaries of the export ----------------------------------------------------------


def test_a_hub_token_in_the_recipe_reaches_no_file_of_the_model_folder(polydigits_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "")  # restored after the test: the run keeps the token in its environment
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.json").write_text("theirs")
    (tmp_path / ".model.tmp-export").symlink_to(victim)  # the fixed staging name of earlier versions
    recipe = tiny_recipe(polydigits_dir, tmp_path / "model", hub_token=SECRET, save_strategy="steps", save_steps=2)
    path = write_yaml(tmp_path / "recipe.yaml", recipe)
    assert main(["train", str(path)]) == 0
    files = [p for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in files) and any(p.name == "README.md" for p in files)
    for file in files:
        assert SECRET.encode() not in file.read_bytes(), file
    assert (victim / "config.json").read_text() == "theirs" and os.listdir(victim) == ["config.json"]


# ---- names from registries stay text in cards and reports ------------------------------------------------


HOSTILE = {
    "img": "<img src=x onerror=alert(1)>",
    "link": "[click](javascript:alert(1))",
    "cell": "a | b\n## forged heading",
}


def hostile_label_space(tmp_path: Path):
    from polyglot_vision.labels import LabelSpace

    registry = {
        "name": "<b>evil</b>",
        "concepts": [
            {"id": "x<script>", "names": {"en": HOSTILE["img"], "fr": HOSTILE["link"]}},
            {"id": "y", "names": {"en": HOSTILE["cell"], "fr": "y"}},
        ],
    }
    return LabelSpace.from_yaml(write_yaml(tmp_path / "evil.yaml", registry))


def assert_inert(text: str) -> None:
    """No markup, link or forged line in the Markdown body outside code blocks (there, text is shown as it is)."""
    text = text.split("\n---\n", 1)[-1]  # the YAML front matter is metadata, not rendered Markdown
    text = re.sub(r"(?ms)^(`{3,}).*?^\1$", "", text)
    text = re.sub(r"\\.", "", text)  # a backslash-escaped character is shown as itself
    for raw in ("<img", "<script", "<b>", "](javascript:", "\n## forged", "a | b"):
        assert raw not in text, raw


def test_markup_in_registry_names_is_escaped_in_the_model_card_and_reports(tmp_path):
    from polyglot_vision.evaluation.report import render_markdown
    from polyglot_vision.export import render_card
    from polyglot_vision.labels.alignment import render_markdown as alignment_markdown
    from polyglot_vision.training import load_recipe

    label_space = hostile_label_space(tmp_path)
    recipe = load_recipe(
        write_yaml(
            tmp_path / "recipe.yaml",
            {
                "model_config": dict(TINY_MODEL),
                "label_space": str(tmp_path / "evil.yaml"),
                "sources": [{"name": "s", "path": str(tmp_path), "language": "en"}],
                "output_dir": str(tmp_path / "out"),
            },
        )
    )
    metrics = {
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "n": 2,
        "per_source": {HOSTILE["img"]: {"accuracy": 0.5, "n": 2}},
        "top_confusions": [{"true": "x<script>", "predicted": "y", "count": 1, "scripts": {"Latn": 1}}],
    }
    card = str(render_card(recipe, label_space, metrics, model_name=HOSTILE["link"]))
    assert_inert(card.split("## Training recipe")[0])
    assert "&lt;img src=x onerror=alert(1)&gt;" in card
    report = render_markdown(metrics, "test", HOSTILE["img"], None, [])
    assert_inert(report)
    row = {"source": HOSTILE["cell"], "language": "en", "label": HOSTILE["img"], "decision": "accepted"}
    row.update(concept="y", method="name", score=1.0, candidates=[], evidence=HOSTILE["link"], images=1)
    stats = {"read": 1, "bad_images": 0, "duplicates": 0, "kept": 1, "bad_by_kind": {}}
    aligned = alignment_markdown(
        {
            "label_space": HOSTILE["img"],
            "alignment": [row],
            "sources": {HOSTILE["cell"]: stats},
            "duplicates": {k: 0 for k in ("removed", "within_source", "across_sources", "across_splits")}
            | {"label_conflicts": 0, "conflict_images_dropped": 0},
            "languages": ["en"],
            "splits": {"train": {"images": 1, "by_language": {"en": 1}}},
        }
    )
    assert_inert(aligned)
    table = [line for line in aligned.splitlines() if "javascript" in line][0]
    assert table.count(" | ") == 9  # ten cells: the pipe in the name did not add one


def test_markup_in_registry_names_is_escaped_in_the_dataset_card(tmp_path):
    from polyglot_vision.export import render_dataset_card

    label_space = hostile_label_space(tmp_path)
    report = {
        "splits": {"train": {"images": 2, "by_language": {"en": 2}, "by_concept": {"x<script>": 1, "y": 1}}},
        "languages": ["en"],
        "concepts": ["x<script>", "y"],
        "source_info": [{"name": HOSTILE["img"], "path": HOSTILE["link"], "language": "en", "script": "Latn"}],
        "sources": {HOSTILE["img"]: {"kept": 2, "bad_images": 0}},
        "duplicates": {"removed": 0},
        "alignment": [],
    }
    card = str(render_dataset_card(report, label_space, name=HOSTILE["cell"]))
    assert_inert(card)
