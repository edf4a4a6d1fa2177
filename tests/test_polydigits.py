"""PolyDigits: the offline default data set (small sizes, fast)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from polyglot_vision.builtin_data.polydigits import (  # noqa: E402
    DEFAULT_SYNTHESIS,
    FONT_PACKAGES,
    HOLDOUT_FONTS,
    SOURCES,
    SYNTHESIS,
    generate_polydigits,
)
from polyglot_vision.cli import main  # noqa: E402
from polyglot_vision.errors import UserError  # noqa: E402

from conftest import fails

PER_CLASS = 2
SIZE = 32

EXPECTED_LABELS = {
    "latin-fr": ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"],
    "latin-de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
    "arabic": ["صفر", "واحد", "اثنان", "ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة"],
    "persian": list("۰۱۲۳۴۵۶۷۸۹"),
    "devanagari": list("०१२३४५६७८९"),
    "bengali": list("০১২৩৪৫৬৭৮৯"),
    "gujarati": list("૦૧૨૩૪૫૬૭૮૯"),
    "tamil": list("௦௧௨௩௪௫௬௭௮௯"),
    "telugu": list("౦౧౨౩౪౫౬౭౮౯"),
    "kannada": list("೦೧೨೩೪೫೬೭೮೯"),
    "thai": ["ศูนย์", "หนึ่ง", "สอง", "สาม", "สี่", "ห้า", "หก", "เจ็ด", "แปด", "เก้า"],
    "khmer": list("០១២៣៤៥៦៧៨៩"),
    "myanmar": list("၀၁၂၃၄၅၆၇၈၉"),
    "han": list("〇一二三四五六七八九"),
}
EXPECTED_META = {
    "mnist": ("en", "Latn"),
    "latin-fr": ("fr", "Latn"),
    "latin-de": ("de", "Latn"),
    "arabic": ("ar", "Arab"),
    "persian": ("fa", "Arab"),
    "devanagari": ("hi", "Deva"),
    "bengali": ("bn", "Beng"),
    "gujarati": ("gu", "Gujr"),
    "tamil": ("ta", "Taml"),
    "telugu": ("te", "Telu"),
    "kannada": ("kn", "Knda"),
    "thai": ("th", "Thai"),
    "khmer": ("km", "Khmr"),
    "myanmar": ("my", "Mymr"),
    "han": ("zh", "Hani"),
}


def _tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every image file (PNG or parquet) under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in {".png", ".parquet"} and p.name != "preview.png"
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("pd") / "polydigits"
    # the numeral sources only: the strangers source has tests of its own (test_refusal.py)
    entries = generate_polydigits(out, per_class=PER_CLASS, seed=0, image_size=SIZE, progress=False, strangers=0)
    return out, entries


def test_entries_and_files(generated):
    out, entries = generated
    assert [e["name"] for e in entries] == [s.name for s in SOURCES] == list(EXPECTED_META)
    for e in entries:
        assert (e["language"], e["script"]) == EXPECTED_META[e["name"]]
        assert e["image_column"] == "image"
        assert e["label_column"] == ("digit" if e["name"] == "mnist" else "label")
        assert Path(e["path"]).exists()
        assert Path(e["path"]).is_relative_to(out)
    on_disk = yaml.safe_load((out / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    assert [d["name"] for d in on_disk] == [e["name"] for e in entries]
    for d, e in zip(on_disk, entries):
        assert not Path(d["path"]).is_absolute()
        assert (out / d["path"]).resolve() == Path(e["path"]).resolve()
    readme = (out / "README.md").read_text(encoding="utf-8")
    for text in ("@fontsource/", "OFL-1.1", "integrity hash"):
        assert text in readme
    preview = Image.open(out / "preview.png")
    assert preview.height >= len(SOURCES) * SIZE
    # no temporary or backup folder left beside the output
    assert sorted(p.name for p in out.parent.iterdir()) == ["polydigits"]


def test_sources_load_with_datasets(generated):
    import datasets

    out, entries = generated
    for e in entries:
        name = e["name"]
        if name.startswith("latin-"):
            ds = datasets.load_dataset("imagefolder", data_dir=e["path"], split="train")
            labels = [ds.features["label"].int2str(i) for i in ds["label"]]
        else:
            ds = datasets.load_dataset("parquet", data_files=e["path"], split="train")
            labels = ds[e["label_column"]]
        assert isinstance(ds.features["image"], datasets.Image)
        if name == "mnist":
            assert len(ds) == 5000
            assert sorted(set(labels)) == list(range(10))
            assert np.bincount(labels).tolist() == [500] * 10
        else:
            assert len(ds) == 10 * PER_CLASS
            assert sorted(set(labels)) == sorted(EXPECTED_LABELS[name])
            assert all(labels.count(lab) == PER_CLASS for lab in EXPECTED_LABELS[name])
        img = ds[0]["image"]
        assert img.size == (SIZE, SIZE)


def test_images_are_dark_ink_on_light_paper(generated):
    import datasets

    out, entries = generated
    for e in entries:
        if e["name"].startswith("latin-"):
            files = sorted(Path(e["path"]).rglob("*.png"))
            images = [Image.open(f) for f in files]
        else:
            ds = datasets.load_dataset("parquet", data_files=e["path"], split="train")
            images = [ds[i]["image"] for i in range(0, len(ds), max(1, len(ds) // 20))]
        for img in images:
            a = np.asarray(img.convert("L"), dtype=np.float32)
            assert a.shape == (SIZE, SIZE)
            border = np.concatenate([a[:2].ravel(), a[-2:].ravel(), a[:, :2].ravel(), a[:, -2:].ravel()])
            inner = a[2:-2, 2:-2]
            assert border.mean() > 150, e["name"]  # light paper
            assert inner.min() < border.mean() - 60, e["name"]  # dark ink inside
            dark = border.mean() - 60  # ink sits inside, not at the edge (a dot of an Arabic zero counts too)
            assert (inner < dark).mean() > (border < dark).mean(), e["name"]


def test_images_vary(generated):
    out, _ = generated
    files = sorted((out / "latin-fr").rglob("*.png"))
    digests = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert len(digests) == len(files)


def test_deterministic_for_a_seed(tmp_path):
    kw = dict(per_class=2, image_size=SIZE, progress=False)
    generate_polydigits(tmp_path / "a", seed=3, **kw)
    generate_polydigits(tmp_path / "b", seed=3, **kw)
    generate_polydigits(tmp_path / "c", seed=4, **kw)
    a, b, c = (_tree_digest(tmp_path / x) for x in "abc")
    assert a and a == b
    rendered = [k for k in a if not k.startswith("mnist")]
    assert rendered and all(a[k] != c[k] for k in rendered)


def test_same_images_whatever_the_worker_count(tmp_path):
    kw = dict(per_class=3, image_size=SIZE, progress=False, seed=1)
    generate_polydigits(tmp_path / "one", workers=1, **kw)
    generate_polydigits(tmp_path / "two", workers=2, **kw)
    assert _tree_digest(tmp_path / "one") == _tree_digest(tmp_path / "two")


def test_each_synthesis_ingredient_can_be_left_out(tmp_path):
    kw = dict(per_class=3, image_size=SIZE, progress=False, seed=2)
    generate_polydigits(tmp_path / "all", synthesis=SYNTHESIS, **kw)
    digests = {"all": _tree_digest(tmp_path / "all")}
    for left_out in SYNTHESIS:
        out = tmp_path / left_out
        generate_polydigits(out, synthesis=[x for x in SYNTHESIS if x != left_out], **kw)
        digests[left_out] = _tree_digest(out)
        readme = (out / "README.md").read_text(encoding="utf-8")
        assert f"synthesis={', '.join(x for x in SYNTHESIS if x != left_out)})" in readme
    rendered = [k for k in digests["all"] if not k.startswith("mnist") and k.endswith(".png")]
    for left_out in SYNTHESIS:  # each ingredient changes some images, and never the labels or the count
        assert digests[left_out].keys() == digests["all"].keys()
        assert any(digests[left_out][k] != digests["all"][k] for k in rendered), left_out
    for left_out in SYNTHESIS:  # the real handwriting is reframed, re-stroked and coarsened, never re-typeset
        changed = digests[left_out]["mnist/data.parquet"] != digests["all"]["mnist/data.parquet"]
        assert changed == (left_out in {"framing", "strokes", "low-resolution"}), left_out
    generate_polydigits(tmp_path / "plain", synthesis=(), **kw)
    assert "synthesis=none" in (tmp_path / "plain" / "README.md").read_text(encoding="utf-8")
    with Image.open(next((tmp_path / "plain" / "latin-fr").rglob("*.png"))) as image:
        pixels = np.asarray(image, dtype=np.float32)
    assert pixels.mean() > 128  # still dark ink on light paper


def test_the_command_line_draws_the_default_synthesis_or_the_ingredients_named(tmp_path, capsys):
    args = ["--per-class", "2", "--image-size", str(SIZE)]
    assert main(["polydigits", str(tmp_path / "default"), *args]) == 0
    assert set(DEFAULT_SYNTHESIS) < set(SYNTHESIS)
    card = (tmp_path / "default" / "README.md").read_text(encoding="utf-8")
    assert f"synthesis={', '.join(DEFAULT_SYNTHESIS)})" in card
    assert main(["polydigits", str(tmp_path / "pens"), *args, "--synthesis", "pens", "axes"]) == 0
    assert "synthesis=axes, pens)" in (tmp_path / "pens" / "README.md").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["polydigits", str(tmp_path / "bad"), *args, "--synthesis", "axes", "nibs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nibs'" in err[0] and "pens" in err[0]
    assert not (tmp_path / "bad").exists()


def test_holdout_fonts(tmp_path):
    entries = generate_polydigits(tmp_path / "ho", per_class=2, image_size=SIZE, progress=False, holdout_fonts=True)
    names = [e["name"] for e in entries]
    assert "mnist" not in names and "strangers" not in names and "latin-fr" in names and "arabic" in names
    readme = (tmp_path / "ho" / "README.md").read_text(encoding="utf-8")
    for fonts in HOLDOUT_FONTS.values():
        for f in fonts:
            assert f in readme
    assert {"latn", "arab", "deva", "thai"} <= set(HOLDOUT_FONTS)


def test_replaces_previous_output_atomically(tmp_path):
    out = tmp_path / "pd"
    generate_polydigits(out, per_class=1, image_size=SIZE, progress=False, seed=0)
    before = _tree_digest(out)
    generate_polydigits(out, per_class=1, image_size=SIZE, progress=False, seed=5)
    assert _tree_digest(out) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pd"]


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="PolyDigits folder .* did not write"):
        generate_polydigits(out, per_class=1, progress=False)
    assert (out / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        ({"per_class": 0}, "per_class"),
        ({"per_class": -3}, "per_class"),
        ({"per_class": "many"}, "per_class"),
        ({"image_size": 4}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
        ({"synthesis": ("pens", "crayons")}, "crayons"),
    ],
)
def test_bad_arguments_raise_user_error(tmp_path, kwargs, culprit):
    with pytest.raises(UserError) as info:
        generate_polydigits(tmp_path / "out", progress=False, **kwargs)
    message = str(info.value)
    assert culprit in message and "\n" not in message
    assert not any(tmp_path.iterdir())


def test_every_font_comes_from_a_pinned_google_fonts_package():
    from polyglot_vision.builtin_data.assets import load_lock

    locked = {p.name: p for p in load_lock().values() if p.purpose == "fonts"}
    assert set(FONT_PACKAGES) == set(locked)
    for name in FONT_PACKAGES:
        assert name.startswith("@fontsource/") and locked[name].integrity.startswith("sha512-")
        assert locked[name].license in ("OFL-1.1", "Apache-2.0")


def test_a_missing_or_altered_font_is_one_line_naming_the_fetch(tmp_path, monkeypatch, capsys):
    import shutil

    from polyglot_vision.builtin_data import assets
    from polyglot_vision.builtin_data.fonts import FONTS, font_faces

    spec = next(iter(FONTS.values()))
    path = font_faces(spec, spec.scripts[0])[0][0]
    package_dir = path.parents[len(path.relative_to(assets.package_dir(spec.package)).parts) - 1]
    copy = tmp_path / "npm" / package_dir.name
    shutil.copytree(package_dir, copy)
    monkeypatch.setenv("POLYGLOT_VISION_CACHE", str(tmp_path))
    assets.asset_file.cache_clear()
    try:
        (copy / path.relative_to(package_dir)).write_bytes(b"not a font")
        altered = fails(capsys, ["polydigits", tmp_path / "out", "--per-class", "1"], spec.package, "altered")
        shutil.rmtree(copy)
        missing = fails(capsys, ["polydigits", tmp_path / "out", "--per-class", "1"], spec.package)
        assert "polyglot-vision fetch" in altered and "polyglot-vision fetch" in missing
    finally:
        assets.asset_file.cache_clear()
    assert not (tmp_path / "out").exists()


def test_png_round_trip_is_grayscale(generated):
    out, _ = generated
    f = next((out / "latin-de").rglob("*.png"))
    img = Image.open(io.BytesIO(f.read_bytes()))
    assert img.mode == "L" and img.size == (SIZE, SIZE)


def test_every_font_of_the_table_draws_the_digits_of_its_scripts():
    """Each entry of the table, for every numeral system it names: all ten digits in the cmap,
    ten ink boxes, ten distinct glyphs, and non-Latin digits not drawn as the family's Latin ones (as Hind,
    Rajdhani, Teko and Poppins do for Devanagari)."""
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    from polyglot_vision.builtin_data.fonts import FONTS, NUMERALS, font_faces, render_mask

    def ink(font, ch):
        img, bbox = render_mask(font, ch)
        assert bbox, ch
        return np.asarray(img.crop(bbox).resize((24, 24))) > 127

    def square_ink(font, ch):  # the ink box padded to a square: a dot and a bar stay apart
        img, (x0, y0, x1, y1) = render_mask(font, ch)
        side = max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        box = (cx - side // 2 - 1, cy - side // 2 - 1, cx + side // 2 + 1, cy + side // 2 + 1)
        return np.asarray(img.crop(box).resize((32, 32))) > 127

    def load(path):
        return ImageFont.truetype(str(path), 64, layout_engine=ImageFont.Layout.RAQM)

    assert len(FONTS) >= 150
    # every family for every system it names, on its regular face (the selection checked every face; this
    # keeps `make test` short)
    for spec in FONTS.values():
        latin = font_faces(spec, "latn") if "latn" in spec.scripts else []
        for key in spec.scripts:
            faces = font_faces(spec, key)
            regular = min(range(len(faces)), key=lambda i: (abs(i - 1), i)) if len(faces) > 1 else 0
            for i, face in [(regular, faces[regular])]:
                for path, ch in zip(face, NUMERALS[key]):
                    assert ord(ch) in TTFont(str(path), lazy=True).getBestCmap(), (key, spec.name, path.name, ch)
                fonts = [load(p) for p in face]
                glyphs = [square_ink(f, c) for f, c in zip(fonts, NUMERALS[key])]
                iou = [[(g & h).sum() / max((g | h).sum(), 1) for h in glyphs] for g in glyphs]
                same = [(a, b) for a in range(10) for b in range(a) if iou[a][b] >= 0.95]
                assert not same, (key, spec.name, face[0].name, same)
                if key in ("latn", "hani") or not latin:
                    continue
                # pixel agreement with the Latin digit: ~0.95 for a Latin look-alike, ~0.65 for real forms
                roman = load(latin[min(i, len(latin) - 1)][0])
                agree = float(
                    np.mean(
                        [(ink(f, a) == ink(roman, b)).mean() for f, a, b in zip(fonts, NUMERALS[key], "0123456789")]
                    )
                )
                assert agree < 0.85, (key, spec.name, face[0].name, agree)


def test_held_out_families_never_train(tmp_path):
    """The held-out split is by family, design lineage and publisher: none on both sides, and every system
    drawn by two publishers or more holds one out; a table that splits a family or a publisher is refused."""
    from polyglot_vision.builtin_data.fonts import FONTS, SCRIPT_FONTS, TABLE, load_font_table

    sides = {}
    for spec in FONTS.values():
        for key in (spec.family, spec.group and "group:" + spec.group, "publisher:" + spec.publisher):
            if key:
                sides.setdefault(key, set()).add(spec.holdout)
    assert all(len(held) == 1 for held in sides.values())
    for key, (train, held) in SCRIPT_FONTS.items():
        assert train, key
        assert not {FONTS[n].family for n in train} & {FONTS[n].family for n in held}, key
        assert not {FONTS[n].publisher for n in train} & {FONTS[n].publisher for n in held}, key
        if len({FONTS[n].publisher for n in train + held}) >= 2:
            assert held, key
    text = TABLE.read_text(encoding="utf-8")
    held = next(s for s in FONTS.values() if s.holdout)
    trained = next(s for s in FONTS.values() if not s.holdout and s.publisher != held.publisher)
    for key, value in (("family", trained.family), ("publisher", trained.publisher)):
        line = f"  {key}: {getattr(held, key)}\n"
        assert line in text
        text_split = text.replace(f"- name: {held.name}\n", "@@").split("@@")
        text_split[1] = text_split[1].replace(line, f"  {key}: {value}\n", 1)
        (tmp_path / "fonts.yaml").write_text(f"- name: {held.name}\n".join(text_split), encoding="utf-8")
        with pytest.raises(ValueError, match=f"{key} {value} on both sides"):
            load_font_table(tmp_path / "fonts.yaml")


def test_handwriting_comes_in_five_framings():
    """The same 1,797 UCI digits: filling the frame, with margins, thin, thick, and light on dark."""
    from polyglot_vision.builtin_data import FRAMINGS, handwriting_framings

    sets = handwriting_framings(size=48)
    assert list(sets) == list(FRAMINGS) == ["tight", "margin", "thin", "thick", "light-on-dark"]
    for images, labels in sets.values():
        assert len(images) == len(labels) == 1797 and set(labels) == {str(d) for d in range(10)}
        assert images[0].size == (48, 48) and images[0].mode == "RGB"

    def gray(framing, i=0):
        return np.asarray(sets[framing][0][i].convert("L"), dtype=np.float32)

    ink = {f: float(np.mean([(gray(f, i) < 128).mean() for i in range(50)])) for f in FRAMINGS}
    assert ink["thin"] < ink["margin"] < ink["thick"] < ink["tight"]
    edge = lambda a: np.concatenate([a[:3].ravel(), a[-3:].ravel()]).mean()  # noqa: E731
    assert edge(gray("margin")) > 240 and edge(gray("light-on-dark")) < 15


def test_a_family_is_credited_to_its_foundry_or_to_the_owner_of_its_sources():
    from polyglot_vision.builtin_data.font_selection import Candidate, assign_holdout, publisher

    def family(fid, name, copyright, website="", scripts=("deva",)):
        return Candidate(fid, name, "sans-serif", "OFL-1.1", copyright, website, faces={k: ["f"] for k in scripts})

    hind = family("hind", "Hind", "Copyright 2014 Indian Type Foundry Hind-Regular.ttf")
    baloo = family(
        "baloo-2", "Baloo 2", "Copyright 2019 The Baloo 2 Project Authors", "https://github.com/EkType/Baloo2"
    )
    baloo_bhai = family("baloo-bhai-2", "Baloo Bhai 2", "Copyright 2019 The Baloo Bhai 2 Project Authors")
    noto = family("noto-sans-devanagari", "Noto Sans Devanagari", "Copyright 2022 The Noto Project Authors")
    assert [publisher(c) for c in (hind, baloo, noto)] == ["Indian Type Foundry", "EkType", "Noto (Google)"]
    # one system, three publishers: one whole publisher (with its lineage) is held out, never all of them
    held = assign_holdout([hind, baloo, baloo_bhai, noto])
    assert held and len(held) < 4
    assert {"baloo-2", "baloo-bhai-2"} <= held or not {"baloo-2", "baloo-bhai-2"} & held


def test_the_yardstick_reports_each_system_with_no_hint_with_its_script_and_within_the_top_two(trained_model):
    from polyglot_vision.builtin_data import handwriting_framings
    from polyglot_vision.builtin_data.polydigits import held_out_digits
    from polyglot_vision.experiments.generalization import generalization, report

    hand = {k: (images[:100], labels[:100]) for k, (images, labels) in handwriting_framings().items()}
    result = generalization(trained_model, held_out_digits(per_class=1, workers=1), hand, "Latn")
    assert set(result["per_system"]) == {s.numerals for s in SOURCES if s.numerals}
    for system, row in result["per_system"].items():
        assert row["n"] >= 10
        assert row["accuracy"] <= row["accuracy_top2"]
        assert 0 <= row["accuracy_script_hint"] <= 1
        assert row["held_out_families"] == (system in HOLDOUT_FONTS)
        if row["held_out_families"]:
            assert row["held_out_publishers"]
    assert result["held_out_families_macro_accuracy"] <= result["held_out_families_macro_accuracy_top2"]
    assert "top-2" in report(result) and "tight" in result["handwriting_per_framing"]
