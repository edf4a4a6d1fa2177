"""Messy data means what it says: labels, images, languages and output folders, through the command line.

Each case is what a user with real data meets: a "no label" value, a sign or a decimal point, a column that
mixes numbers and words, class folders with sub-folders, a word two languages spell alike, float and 16-bit
images, animations, a per-row language column, a manifest whose images lie beside it. Each ends in the right
result, or in one line (exit status 2) that names the culprit, or in a line on the console and in the report
that says what was decided; nothing the user made is deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import load_from_disk
from PIL import Image

from polyglot_vision.cli import main

from conftest import LABELS, TINY_MODEL, fails, snapshot, write_yaml


def noise(path: Path, seed: int, size: int = 12) -> Path:
    """A small PNG whose pixels no other image shares (no duplicates, no label conflicts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)
    return path


def recipe(tmp_path: Path, *sources: dict, name: str = "r.yaml", **overrides) -> Path:
    data = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(LABELS / "digits.yaml"),
        "output_dir": str(tmp_path / "model"),
        "validation_fraction": 0.0,
        "test_fraction": 0.0,
        "image_votes": False,
        "sources": list(sources),
        **overrides,
    }
    return write_yaml(tmp_path / name, data)


def manifest(tmp_path: Path, name: str, labels: list, *, seed: int = 0, suffix: str = "csv", **columns) -> dict:
    """A manifest of one noise image per label (beside it, in NAME/), as a recipe's source (language en)."""
    files = [noise(tmp_path / name / f"{i:03d}.png", seed * 1000 + i).relative_to(tmp_path).as_posix()
             for i in range(len(labels))]  # fmt: skip
    frame = pd.DataFrame({"file": files, "label": labels, **columns})
    path = tmp_path / f"{name}.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "parquet":
        frame.to_parquet(path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")), encoding="utf-8")
    return {"name": name, "path": str(path), "language": "en", "image_column": "file", "label_column": "label"}


def prepared(argv: list, capsys) -> tuple[dict, str, dict]:
    """Run `prepare` that must succeed: ({concept: images} over all splits, console, report)."""
    out = Path(argv[argv.index("--output") + 1])
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    dataset = load_from_disk(str(out))
    names = dataset["train"].features["label"].names
    counts: dict = {}
    for part in dataset.values():
        for label in part["label"]:
            counts[names[label]] = counts.get(names[label], 0) + 1
    report = json.loads((out / "alignment_report.json").read_text(encoding="utf-8"))
    return counts, captured.out, report


def table_row(printed: str, source: str) -> dict:
    """One source's row of the console table, by column name."""
    lines = printed.splitlines()
    header = next(line.split() for line in lines if line.split()[:2] == ["source", "read"])
    row = next(line.split() for line in lines if line.split()[:1] == [source])
    return dict(zip(header, row))


# ---- labels mean what they say ---------------------------------------------------------------------------

NO_LABEL_SPELLINGS = ["-1", "", "none", "None", "NULL", "null", "unknown", "Unknown", "n/a", "N/A", "NaN", " nan "]


def test_no_label_values_are_left_out_and_counted_never_read_as_a_digit(tmp_path, capsys):
    labels = ["1", "2", "3", "7"] * 3 + NO_LABEL_SPELLINGS
    source = manifest(tmp_path, "scans", labels)
    counts, printed, report = prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    assert counts == {"1": 3, "2": 3, "3": 3, "7": 3}  # "-1" is not a one
    assert table_row(printed, "scans")["unlabelled"] == str(len(NO_LABEL_SPELLINGS))
    note = next(line for line in printed.splitlines() if "without a label left out" in line)
    assert "'-1' ×1" in note and "'unknown' ×1" in note and "empty" in note
    assert report["sources"]["scans"]["unlabelled"] == len(NO_LABEL_SPELLINGS)
    assert report["sources"]["scans"]["unlabelled_as"]["'-1'"] == 1
    assert any("without a label left out" in note for note in report["notes"])
    assert "without a label left out" in (tmp_path / "ds" / "alignment_report.md").read_text(encoding="utf-8")


def test_minus_one_in_a_numeric_column_is_no_label(tmp_path, capsys):
    source = manifest(tmp_path, "numbers", [1, 2, 3, -1, -1, 4, 5, 6])
    counts, printed, _ = prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    assert counts == {str(d): 1 for d in range(1, 7)}
    assert table_row(printed, "numbers")["unlabelled"] == "2"


def test_no_label_values_stop_the_run_with_on_bad_image_error(tmp_path, capsys):
    source = manifest(tmp_path, "scans", ["1", "2", "-1", "unknown"])
    fails(capsys, ["prepare", recipe(tmp_path, source, on_bad_image="error")], "scans", "2 image(s) without a label")


@pytest.mark.parametrize("label", ["+3", "5.0", "2.0", "−4", "- 6", "3,0", "٥٫٠", "+٧", "-2"])
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_text_with_a_sign_or_a_decimal_point_is_not_a_numeral(tmp_path, capsys, label, suffix):
    source = manifest(tmp_path, "scans", ["one", "2", label], suffix=suffix)  # a word: the column is text
    fails(capsys, ["prepare", recipe(tmp_path, source)], repr(label), "scans", "1 label(s)")


def test_numbers_of_a_numeric_column_are_their_values(tmp_path, capsys):
    source = manifest(tmp_path, "floats", [5.0, 7.0, 1.0, 1.0])
    counts, _, _ = prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    assert counts == {"5": 1, "7": 1, "1": 2}


def test_a_label_map_may_name_a_value_that_usually_means_no_label(tmp_path, capsys):
    source = {**manifest(tmp_path, "signs", ["-1", "0", "-1"]), "label_map": {"-1": "1"}}
    counts, _, _ = prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    assert counts == {"0": 1, "1": 2}


def test_a_jsonl_column_mixing_numbers_and_words_is_read_as_its_values(tmp_path, capsys):
    labels = [3, "three", 5.0, "five", "7", None, "seven", 0, -1, "-1"]
    source = manifest(tmp_path, "mixed", labels, suffix="jsonl")
    for policy in ("error", "drop"):
        argv = ["prepare", recipe(tmp_path, source, unmapped_labels=policy), "--output", tmp_path / policy]
        counts, printed, report = prepared(argv, capsys)
        assert counts == {"3": 2, "5": 2, "7": 2, "0": 1}
        assert table_row(printed, "mixed")["unmapped"] == "0" and table_row(printed, "mixed")["unlabelled"] == "3"
        assert {str(row["label"]) for row in report["alignment"]} == {"3", "three", "5", "five", "7", "seven", "0"}


@pytest.mark.parametrize("label", ["5.0", "+3", "true"])
def test_text_in_a_jsonl_column_mixing_numbers_and_words_stays_text(tmp_path, capsys, label):
    source = manifest(tmp_path, "mixed", [1, "two", label], suffix="jsonl")
    fails(capsys, ["prepare", recipe(tmp_path, source)], repr(label), "mixed", "1 label(s)")


def digit_folder(root: Path, layout: dict[str, int]) -> Path:
    """An image folder: {relative folder: images}, each image unique."""
    for i, (folder, n) in enumerate(layout.items()):
        for j in range(n):
            noise(root / folder / f"{j}.png", 100 * i + j)
    return root


@pytest.mark.parametrize(
    "layout, culprit",
    [
        ({"1/batch1": 2, "2/batch1": 2, "3/batch2": 2}, "1/batch1"),
        ({"1": 2, "2": 2, "2/extra": 1}, "2/extra"),
        ({"1/a/b": 2, "2/a/b": 2}, "1/a/b"),
        ({"train/1/scan": 2, "train/2": 2, "test/1": 1, "test/2": 1}, "1/scan"),
    ],
)
def test_class_folders_with_sub_folders_are_refused_never_labelled_by_the_inner_name(
    tmp_path, capsys, layout, culprit
):
    folder = digit_folder(tmp_path / "photos", layout)
    source = {"name": "photos", "path": str(folder), "language": "en"}
    if "train/2" in layout:
        source["split"] = {"train": "train", "test": "test"}
    for policy in ("error", "keep"):
        line = fails(capsys, ["prepare", recipe(tmp_path, source, unmapped_labels=policy)], "photos", culprit)
        assert "two class sub-folders" not in line
    assert not (tmp_path / "model").exists()


def test_class_folders_with_hidden_sub_folders_are_read(tmp_path, capsys):
    folder = digit_folder(tmp_path / "photos", {"1": 2, "2": 2, "3": 2})
    noise(folder / "1" / ".ipynb_checkpoints" / "x.png", 999)
    source = {"name": "photos", "path": str(folder), "language": "en"}
    counts, _, _ = prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    assert counts == {"1": 2, "2": 2, "3": 2}


@pytest.fixture
def fruit_registry(tmp_path) -> str:
    concepts = [{"id": "pear", "names": {"en": "pear", "fr": "poire", "de": "Birne"}}]
    concepts.append({"id": "gift", "names": {"en": "gift", "fr": "cadeau"}})
    return str(write_yaml(tmp_path / "fruit.yaml", {"name": "fruit", "concepts": concepts}))


def test_kept_labels_join_only_in_the_same_language_false_friends_stay_apart(tmp_path, capsys, fruit_registry):
    sources = [
        {**manifest(tmp_path, "fr-a", ["pomme", "poire"], seed=1), "language": "fr"},
        {**manifest(tmp_path, "fr-b", ["Pomme", "pomme"], seed=2), "language": "fr"},
        {**manifest(tmp_path, "de", ["Pomme", "Gift", "Birne"], seed=3), "language": "de"},
        {**manifest(tmp_path, "nl", ["Gift"], seed=4), "language": "nl"},
        {**manifest(tmp_path, "en", ["apple", "gift"], seed=5), "language": "en"},
    ]
    argv = ["prepare", recipe(tmp_path, *sources, label_space=fruit_registry, unmapped_labels="keep")]
    counts, _, report = prepared([*argv, "--output", tmp_path / "ds"], capsys)
    concept = {(row["source"], row["label"]): row["concept"] for row in report["alignment"]}
    assert concept[("fr-a", "pomme")] == concept[("fr-b", "pomme")] == concept[("fr-b", "Pomme")]  # one language
    assert concept[("de", "Pomme")] != concept[("fr-a", "pomme")]  # German Pomme is not French pomme
    assert concept[("de", "Gift")] not in ("gift", concept[("nl", "Gift")])  # poison is no present
    assert concept[("en", "gift")] == "gift" and concept[("de", "Birne")] == "pear"
    assert concept[("en", "apple")] == "apple"
    assert counts[concept[("fr-a", "pomme")]] == 3 and counts[concept[("de", "Pomme")]] == 1
    assert counts["gift"] == 1 and counts[concept[("de", "Gift")]] == 1


# ---- images mean what they show ------------------------------------------------------------------------


def ink(mark: int = 0, size: int = 16) -> np.ndarray:
    """A white page (1.0) with a dark bar (0.0) across its middle and a dark dot at column `mark`."""
    page = np.ones((size, size))
    page[size // 2 - 2 : size // 2 + 2] = 0.0
    page[1, mark] = 0.0
    return page


def write_image(path: Path, kind: str, mark: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page = ink(mark)
    if kind == "float-tiff":
        Image.fromarray(page.astype(np.float32), mode="F").save(path)
    elif kind == "float-tiff-255":
        Image.fromarray((page * 255).astype(np.float32), mode="F").save(path)
    elif kind == "png-16":
        Image.fromarray((page * 65535).astype(np.uint16)).save(path)
    elif kind == "png-12-in-16":
        Image.fromarray((page * 4095).astype(np.uint16)).save(path)
    elif kind == "tiff-32":
        Image.fromarray((page * 65535).astype(np.int32), mode="I").save(path)
    return path


@pytest.mark.parametrize(
    "kind, ending",
    [
        ("float-tiff", "tif"),
        ("float-tiff-255", "tiff"),
        ("png-16", "png"),
        ("png-12-in-16", "png"),
        ("tiff-32", "tif"),
    ],
)
def test_float_and_high_bit_images_are_scaled_from_their_own_range(tmp_path, capsys, kind, ending):
    folder = tmp_path / "scans"
    for digit in "12":
        write_image(folder / digit / f"a.{ending}", kind, mark=int(digit))
        noise(folder / digit / "b.png", 500 + int(digit))
    source = {"name": "scans", "path": str(folder), "language": "en"}
    prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    train = load_from_disk(str(tmp_path / "ds"))["train"]
    pages = [np.asarray(image.convert("L")) for image in train["image"] if image.size == (16, 16)]
    assert len(pages) == 2
    for page in pages:  # white paper stays white, the ink dark
        assert page[0].min() >= 250 and page[8].max() <= 5 and page[1].min() <= 5, (kind, page[0], page[8])


def test_multi_frame_images_say_which_frame_is_used_once_per_source(tmp_path, capsys):
    folder = tmp_path / "anim"
    for digit in "123":
        (folder / digit).mkdir(parents=True)
        pages = [ink(int(digit) + 3 * i) * (255 - 60 * i) for i in range(3)]
        first, *rest = [Image.fromarray(page.astype(np.uint8), mode="L") for page in pages]
        first.save(folder / digit / "a.gif", save_all=True, append_images=rest)
        first.save(folder / digit / "b.tif", save_all=True, append_images=rest)
        noise(folder / digit / "c.png", 500 + int(digit))
    other = manifest(tmp_path, "plain", ["4", "5"])
    source = {"name": "anim", "path": str(folder), "language": "en"}
    argv = ["prepare", recipe(tmp_path, source, other), "--output", tmp_path / "ds"]
    counts, printed, report = prepared(argv, capsys)
    assert counts["1"] == 3  # a GIF, a TIFF and a PNG each: nothing skipped
    said = [line for line in printed.splitlines() if "first frame" in line]
    assert len(said) == 1 and said[0].startswith("anim:") and "6 image(s)" in said[0]
    assert report["sources"]["anim"]["multi_frame"] == 6 and report["sources"]["plain"]["multi_frame"] == 0
    assert "first frame" in (tmp_path / "ds" / "alignment_report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_a_per_row_language_column_is_used_and_the_disagreement_said(tmp_path, capsys, suffix):
    languages = ["de", "de", "", None, "fr", "DE"] if suffix != "csv" else ["de", "de", "", "", "fr", "DE"]
    source = {**manifest(tmp_path, "rows", list("123456"), suffix=suffix, language=languages), "language": "fr"}
    argv = ["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"]
    _, printed, report = prepared(argv, capsys)
    train = load_from_disk(str(tmp_path / "ds"))["train"]
    assert sorted(train["language"]) == ["de", "de", "de", "fr", "fr", "fr"]
    assert {s for s, lang in zip(train["script"], train["language"])} == {"Latn"}
    said = next(line for line in printed.splitlines() if "`language` column" in line)
    assert "de 3" in said and "fr 3" in said and "language: fr" in said
    assert report["splits"]["train"]["by_language"] == {"de": 3, "fr": 3}


def test_labels_are_read_in_the_language_their_rows_carry(tmp_path, capsys):
    labels = ["sieben", "sieben", "sept", "drei", "trois", "3"]
    languages = ["de", "de", "fr", "de", "", "de"]
    source = {**manifest(tmp_path, "rows", labels, suffix="parquet", language=languages), "language": "fr"}
    counts, printed, report = prepared(["prepare", recipe(tmp_path, source), "--output", tmp_path / "ds"], capsys)
    assert counts == {"7": 3, "3": 3}
    rows = {row["label"]: row for row in report["alignment"]}
    assert rows["sieben"]["language"] == "de" and rows["sieben"]["concept"] == "7"
    assert rows["sept"]["language"] == "fr"


def test_a_language_column_with_a_bogus_tag_is_named(tmp_path, capsys):
    source = manifest(tmp_path, "rows", ["1", "2"], language=["de", "klingon!"])
    fails(capsys, ["prepare", recipe(tmp_path, source)], "rows", "klingon!", "language")


# ---- outputs never overlap inputs ------------------------------------------------------------------------


@pytest.fixture
def manifest_beside_images(tmp_path) -> Path:
    """manifests/labels.csv listing ../images/*.png: 12 images the user made."""
    images = [noise(tmp_path / "images" / f"{i:02d}.png", i) for i in range(12)]
    (tmp_path / "manifests").mkdir()
    rows = ["file,label"] + [f"../images/{p.name},{i % 4}" for i, p in enumerate(images)]
    (tmp_path / "manifests" / "labels.csv").write_text("\n".join(rows) + "\n")
    source = {"name": "beside", "path": str(tmp_path / "manifests" / "labels.csv"), "language": "en",
              "image_column": "file", "allow_outside": True}  # fmt: skip
    return recipe(tmp_path, source)


@pytest.mark.parametrize("output", ["images", "."])
def test_no_output_may_overlap_the_images_a_manifest_reads(manifest_beside_images, tmp_path, capsys, output):
    before = snapshot(tmp_path / "images")
    out = tmp_path / output
    for flags in ([], ["--overwrite"]):
        line = fails(capsys, ["prepare", manifest_beside_images, "--output", out, *flags], "overlaps", "images")
        assert "--overwrite" not in line
    assert snapshot(tmp_path / "images") == before
    assert main(["prepare", str(manifest_beside_images), "--output", str(tmp_path / "dataset")]) == 0
    assert snapshot(tmp_path / "images") == before


def test_an_image_folder_of_a_manifest_in_a_sub_folder_of_the_output_is_protected(tmp_path, capsys):
    images = [noise(tmp_path / "work" / "raw" / "scans" / f"{i}.png", i) for i in range(4)]
    rows = ["file,label"] + [f"work/raw/scans/{p.name},{i}" for i, p in enumerate(images)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    source = {"name": "deep", "path": str(tmp_path / "labels.csv"), "language": "en", "image_column": "file"}
    before = snapshot(tmp_path / "work")
    line = fails(capsys, ["prepare", recipe(tmp_path, source), "--output", tmp_path / "work", "--overwrite"], "work")
    assert "overlaps" in line and snapshot(tmp_path / "work") == before


def test_training_and_evaluation_outputs_may_not_overlap_a_manifests_images(manifest_beside_images, tmp_path, capsys):
    before = snapshot(tmp_path / "images")
    argv = ["train", manifest_beside_images, "--output_dir", tmp_path / "images", "--overwrite_output_dir", "true"]
    line = fails(capsys, argv, "overlaps", "images")
    assert "--overwrite" not in line and snapshot(tmp_path / "images") == before


def test_absolute_paths_in_a_manifest_are_protected_too(tmp_path, capsys):
    images = [noise(tmp_path / "elsewhere" / "scans" / f"{i}.png", i) for i in range(4)]
    rows = ["file,label"] + [f"{p},{i}" for i, p in enumerate(images)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    source = {"name": "abs", "path": str(tmp_path / "labels.csv"), "language": "en", "image_column": "file"}
    before = snapshot(tmp_path / "elsewhere")
    out = tmp_path / "elsewhere"
    fails(capsys, ["prepare", recipe(tmp_path, source), "--output", out, "--overwrite"], "overlaps", "scans")
    assert snapshot(tmp_path / "elsewhere") == before


def test_image_votes_never_read_an_image_the_checks_refused(polydigits_dir, tmp_path, capsys):
    """A corrupt image among the images of an uncertain label: votes skip it and prepare finishes."""
    accepted = {"name": "fr", "path": str(polydigits_dir / "latin-fr"), "language": "fr"}
    files = sorted((polydigits_dir / "latin-de").rglob("*.png"))[:6]
    (tmp_path / "codes").mkdir()
    for i, file in enumerate(files):
        shutil.copy(file, tmp_path / "codes" / f"{i}.png")
    (tmp_path / "codes" / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    rows = ["file,label"] + [f"codes/{i}.png,K-{i % 2}" for i in range(6)]
    (tmp_path / "codes.csv").write_text("\n".join(rows) + "\n")
    uncertain = {"name": "codes", "path": str(tmp_path / "codes.csv"), "language": "de", "image_column": "file"}
    argv = ["prepare", recipe(tmp_path, accepted, uncertain, image_votes=True, unmapped_labels="drop")]
    _, printed, report = prepared([*argv, "--output", tmp_path / "ds"], capsys)
    assert table_row(printed, "codes")["bad"] == "1"
    assert {row["label"] for row in report["alignment"] if row["source"] == "codes"} == {"K-0", "K-1"}


def test_a_no_label_spelling_that_names_a_concept_in_the_sources_language_is_a_label(tmp_path, capsys):
    german = {**manifest(tmp_path, "de", ["null", "eins", "null"], seed=1), "language": "de"}  # null: zero
    english = manifest(tmp_path, "en", ["null", "one", "zero"], seed=2)
    counts, printed, _ = prepared(["prepare", recipe(tmp_path, german, english), "--output", tmp_path / "ds"], capsys)
    assert counts == {"0": 3, "1": 2}
    assert table_row(printed, "de")["unlabelled"] == "0" and table_row(printed, "en")["unlabelled"] == "1"
