"""A corpus of broken inputs: each gives one clear line (exit status 2) or its skip count; nothing half-written."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Image as ImageFeature
from datasets import load_from_disk
from PIL import Image

from polyglot_vision.cli import main

from conftest import LABELS, TINY_MODEL, object_folders, objects_recipe, write_yaml


def _png(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid PNG header announcing 3.6 billion pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _rotated_jpeg() -> bytes:
    """20 x 10 pixels stored, EXIF orientation 6: shown 10 wide and 20 high, left half black."""
    pixels = np.full((10, 20, 3), 255, dtype=np.uint8)
    pixels[:, :10] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif, quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory) -> Path:
    """A CSV manifest of digits whose images are broken in every way a user meets, labels as floats."""
    folder = tmp_path_factory.mktemp("broken")
    good = _png(Image.new("RGB", (12, 12), (10, 20, 30)))
    palette = Image.new("P", (12, 12), 0)
    palette.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    rgba = Image.new("RGBA", (12, 12), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 0, 255))
    gray16 = Image.fromarray(np.full((12, 12), 32768, dtype=np.uint16))
    cmyk = io.BytesIO()
    Image.new("CMYK", (12, 12), (255, 0, 0, 0)).save(cmyk, format="JPEG", quality=100)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(jpeg, format="JPEG")
    files = {
        "good.png": good,
        "palette.png": _png(palette),
        "rgba.png": _png(rgba),
        "gray16.png": _png(gray16),
        "cmyk.jpg": cmyk.getvalue(),
        "rotated.jpg": _rotated_jpeg(),
        "truncated.png": good[: len(good) // 2],
        "truncated.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 2],
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "empty.png": b"",
        "bomb.png": _bomb_png(),
        "nolabel.png": _png(Image.new("RGB", (12, 12), (99, 99, 99))),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    labels = {
        "good.png": 1.0,
        "palette.png": 2.0,
        "rgba.png": 3.0,
        "gray16.png": 4.0,
        "cmyk.jpg": 5.0,
        "rotated.jpg": 6.0,
        "truncated.png": 7.0,
        "truncated.jpg": 7.0,
        "corrupt.png": 8.0,
        "empty.png": 8.0,
        "bomb.png": 9.0,
        "missing.png": 9.0,
        "nolabel.png": "",
    }
    rows = ["file,digit"] + [f"{name},{label}" for name, label in labels.items()]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "empty.csv").write_text("file,digit\n", encoding="utf-8")
    return folder


def digits_recipe(folder: Path, out: Path, **overrides) -> dict:
    recipe = {
        "model_config": dict(TINY_MODEL),
        "label_space": str(LABELS / "digits.yaml"),
        "sources": [
            {
                "name": "scans",
                "path": str(folder / "manifest.csv"),
                "language": "en",
                "image_column": "file",
                "label_column": "digit",
            },
            {
                "name": "nothing",
                "path": str(folder / "empty.csv"),
                "language": "fr",
                "image_column": "file",
                "label_column": "digit",
            },
        ],
        "validation_fraction": 0.0,
        "test_fraction": 0.0,
        "output_dir": str(out / "model"),
    }
    recipe.update(overrides)
    return recipe


def test_bad_images_are_skipped_counted_and_convertible_ones_converted(broken_folder, tmp_path, capsys):
    out = tmp_path / "ds"
    recipe = write_yaml(tmp_path / "recipe.yaml", digits_recipe(broken_folder, tmp_path))
    assert main(["prepare", str(recipe), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bad images skipped: scans=6" in printed

    report = json.loads((out / "alignment_report.json").read_text(encoding="utf-8"))
    scans = report["sources"]["scans"]
    assert scans["bad_by_kind"] == {"corrupt or truncated image": 4, "decompression bomb": 1, "missing file": 1}
    assert scans["unlabelled"] == 1 and scans["read"] == 13 and scans["kept"] == 6
    assert report["sources"]["nothing"]["read"] == 0
    # float labels 1.0 ... 6.0 name digit concepts by id
    assert {row["label"]: row["concept"] for row in report["alignment"]} == {i: str(i) for i in range(1, 10)}
    assert "| scans | corrupt or truncated image | 4 |" in (out / "alignment_report.md").read_text(encoding="utf-8")

    train = load_from_disk(str(out))["train"]
    names = [value["path"] for value in train.cast_column("image", ImageFeature(decode=False))["image"]]
    images = dict(zip(names, train["image"]))
    assert sorted(images) == ["cmyk.jpg", "good.png", "gray16.png", "palette.png", "rgba.png", "rotated.jpg"]
    assert all(image.mode in ("RGB", "L") for image in images.values())
    assert images["palette.png"].convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert images["rgba.png"].convert("RGB").getpixel((5, 5)) == (255, 255, 255)  # transparent -> white paper
    assert images["rgba.png"].convert("RGB").getpixel((0, 0)) == (0, 0, 0)
    assert images["gray16.png"].getpixel((0, 0)) == 128  # 32768 of 65535, scaled, not clipped to 255
    cyan = images["cmyk.jpg"].convert("RGB").getpixel((6, 6))
    assert cyan[0] < 30 and cyan[1] > 220 and cyan[2] > 220
    rotated = images["rotated.jpg"].convert("L")
    assert rotated.size == (10, 20)  # upright, as a viewer shows it
    assert rotated.getpixel((5, 2)) < 60 and rotated.getpixel((5, 17)) > 200  # rotated 90° clockwise: black on top
    assert images["good.png"].tobytes() == Image.new("RGB", (12, 12), (10, 20, 30)).tobytes()


def _registry(recipe: dict, tmp_path: Path, change) -> str:
    """The recipe's registry, changed, written beside the test."""
    registry = yaml.safe_load(Path(recipe["label_space"]).read_text(encoding="utf-8"))
    change(registry)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    return str(path)


def _concept(registry: dict, cid: str) -> dict:
    return next(c for c in registry["concepts"] if c["id"] == cid)


def _source(recipe: dict, **changes) -> dict:
    recipe["sources"][0].update(changes)
    return recipe


def _file(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


# (case id, how to break an objects recipe or the digits manifest, words the one error line must hold)
CASES = [
    ("truncated-image-error", lambda r, t, b: digits_recipe(b, t, on_bad_image="error"), ["scans", "truncated.png"]),
    (
        "missing-file-error",
        lambda r, t, b: digits_recipe(
            b,
            t,
            on_bad_image="error",
            sources=[
                {
                    "name": "scans",
                    "path": _file(t, "m.csv", "file,digit\nnowhere.png,3\n"),
                    "language": "en",
                    "image_column": "file",
                    "label_column": "digit",
                }
            ],
        ),
        ["scans", "nowhere.png", "missing file"],
    ),
    (
        "empty-source-error",
        lambda r, t, b: digits_recipe(
            b,
            t,
            on_bad_image="error",
            sources=[
                {
                    "name": "void",
                    "path": str(b / "empty.csv"),
                    "language": "en",
                    "image_column": "file",
                    "label_column": "digit",
                }
            ],
        ),
        ["void", "no usable images"],
    ),
    (
        "nothing-usable",
        lambda r, t, b: digits_recipe(
            b,
            t,
            sources=[
                {
                    "name": "junk",
                    "path": _file(t, "j.csv", "file,digit\ncorrupt.png,1\nempty.png,2\n"),
                    "language": "en",
                    "image_column": "file",
                    "label_column": "digit",
                }
            ],
        ),
        ["no usable images"],
    ),
    ("bad-language-tag", lambda r, t, b: _source(r, language="english"), ["objects-en", "'english'", "BCP-47"]),
    ("bad-script", lambda r, t, b: _source(r, script="latin"), ["objects-en", "'latin'", "ISO 15924"]),
    ("unknown-source-key", lambda r, t, b: _source(r, lang="en"), ["sources[0]", "lang"]),
    ("bad-split-mapping", lambda r, t, b: _source(r, split={"dev": "validation"}), ["objects-en", "dev"]),
    ("negative-weight", lambda r, t, b: _source(r, weight=-1), ["objects-en", "weight"]),
    ("label-map-to-nothing", lambda r, t, b: _source(r, label_map={"cats": "unicorn"}), ["'cats'", "'unicorn'"]),
    (
        "unmapped-labels",
        lambda r, t, b: {
            **r,
            "label_space": _registry(r, t, lambda g: [c["names"].pop("de") for c in g["concepts"]]),
            "image_votes": False,  # else the images align the German words
        },
        ["'Katze'", "'Fahrrad'", "objects-de", "label_map:"],
    ),
    (
        "registry-duplicate-id",
        lambda r, t, b: {
            **r,
            "label_space": _registry(r, t, lambda g: g["concepts"].append({"id": "cat", "names": {"en": "feline"}})),
        },
        ["registry.yaml", "duplicate concept id 'cat'"],
    ),
    (
        "registry-name-two-concepts",
        lambda r, t, b: {**r, "label_space": _registry(r, t, lambda g: _concept(g, "dog")["names"].update(fr="Chat"))},
        ["registry.yaml", "'Chat'", "'cat'", "'dog'"],
    ),
    (
        "registry-bad-language",
        lambda r, t, b: {**r, "label_space": _registry(r, t, lambda g: _concept(g, "cat")["names"].update(xx="miau"))},
        ["registry.yaml", "'xx'"],
    ),
    (
        "registry-bad-origin",
        lambda r, t, b: {
            **r,
            "label_space": _registry(
                r, t, lambda g: _concept(g, "cat")["names"].update(it={"name": "gatto", "origin": "google"})
            ),
        },
        ["registry.yaml", "'google'"],
    ),
    (
        "manifest-no-image-column",
        lambda r, t, b: digits_recipe(
            b,
            t,
            sources=[{"name": "scans", "path": str(b / "manifest.csv"), "language": "en", "label_column": "digit"}],
        ),
        ["scans", "'image'", "file, digit"],
    ),
    (
        "manifest-unknown-type",
        lambda r, t, b: _source(r, path=_file(t, "labels.txt", "cat.png cat\n")),
        ["objects-en", "labels.txt"],
    ),
    (
        "corrupt-parquet",
        lambda r, t, b: _source(r, path=_file(t, "data.parquet", b"PAR1 not really")),
        ["objects-en", "data.parquet"],
    ),
    (
        "list-labels",
        lambda r, t, b: digits_recipe(
            b,
            t,
            sources=[
                {
                    "name": "multi",
                    "path": _file(t, "m.jsonl", '{"file": "good.png", "digit": [1, 2]}\n'),
                    "language": "en",
                    "image_column": "file",
                    "label_column": "digit",
                }
            ],
        ),
        ["multi", "'digit'", "one label per image"],
    ),
    ("bad-policy", lambda r, t, b: {**r, "unmapped_labels": "ignore"}, ["unmapped_labels", "'ignore'"]),
    (
        "embedding-model-unavailable",
        lambda r, t, b: {
            **r,
            "label_embeddings": "nobody/no-such-model",
            "label_space": _registry(r, t, lambda g: [c["names"].pop("de") for c in g["concepts"]]),
        },
        ["nobody/no-such-model"],
    ),
]


@pytest.mark.parametrize(("change", "culprits"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_broken_input_gives_one_line(change, culprits, objects_dir, broken_folder, tmp_path, capsys):
    recipe = change(objects_recipe(objects_dir, tmp_path / "model"), tmp_path, broken_folder)
    out = tmp_path / "ds"
    code = main(["prepare", str(write_yaml(tmp_path / "recipe.yaml", recipe)), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("polyglot-vision: error:")]
    assert len(lines) == 1, err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".ds-*")), "something was half-written"


def test_unmapped_labels_come_with_their_candidates_and_a_snippet(objects_dir, tmp_path, capsys):
    recipe = objects_recipe(objects_dir, tmp_path / "model", image_votes=False)
    recipe["label_space"] = _registry(recipe, tmp_path, lambda g: [c["names"].pop("de") for c in g["concepts"]])
    recipe = write_yaml(tmp_path / "recipe.yaml", recipe)
    assert main(["prepare", str(recipe), "--output", str(tmp_path / "ds")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    # Every German word with its decision and candidates, and a label_map that YAML reads back.
    words = {german for _, _, german in object_folders().values()}
    # (a long line is shortened in its middle; the snippet at its end is whole)
    assert "'Katze' (source 'objects-de', unmapped: no candidate)" in line
    assert "'Banane' (source 'objects-de', proposed: 'banana' its name in fr)" in line  # a candidate, not a merge
    snippet = line.split("sources 'objects-de': label_map: ", 1)[1].split("; or set", 1)[0]
    mapping = yaml.safe_load(snippet)
    assert set(mapping) == words
    assert set(mapping.values()) == {"?"}  # a person chooses; no weak guess to paste unread
