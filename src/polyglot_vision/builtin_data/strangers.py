"""Strangers: images that are no numeral of any system PolyDigits draws, for a model to learn to refuse.

A classifier trained only on numerals answers a numeral for anything (a white page read as "one"). PolyDigits
adds one source of strangers, labelled with the registry's refusal concept ("none"), printed as the numerals are
(paper.py: the same paper, ink and degradations, and as often clean, pure black on pure white):

    blank     an empty page: plain, textured, lit unevenly, or dark (the model also sees inverted images)
    specks    a nearly blank page: a few dots and smudges too small to be a glyph
    noise     pixel noise: Gaussian, salt and pepper, or blotches, strong or faint
    texture   photo-like surfaces: smooth fields at several scales, stripes, checks, grain
    letters   Latin letters, one or two, in the Latin typefaces of the font table
    symbols   punctuation marks and symbols, in the same typefaces
    scribble  several random curves over one another
    shapes    polygons and stars, filled or outlined

Letters and marks that ARE a numeral's shape in some system are never strangers, so the model is not taught to
refuse a numeral: O o (zeros: 0, ० ০ ๐ ០ ၀ 〇), I l | / \\ ( ) (ones: 1, ١), g q (nines whose tail is straight),
V v ^ (Arabic-Indic ٧ and ٨), - _ ~ (Han 一), and dots, commas and quotes (the Arabic-Indic zero ٠ is a dot).
Letters that only resemble a digit in some hands (B and 8, S and 5, Z and 2, G, b and 6) are strangers: a type
designer draws them apart, and the measurement of refusal on real handwriting says what that costs.

Training strangers use the training families of the Latin typefaces; `holdout=True` draws them with the held-out
families only, so that a measurement of refusal is made on typefaces the model never saw.
"""

from __future__ import annotations

import io
import zlib

import datasets
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import UserError
from .fonts import FONTS, SCRIPT_FONTS, font_faces, load_font, render_mask, variation_axes
from .paper import CLEAN_SHARE, blur_and_noise, clean, coarse_field, ink_on_paper, jpeg, paper

__all__ = [
    "KINDS",
    "LETTERS",
    "SOURCE",
    "SYMBOLS",
    "check_strangers",
    "draw_stranger",
    "draw_strangers",
    "write_strangers_source",
]

LETTERS = "ABCDEFGHJKLMNPQRSTUWXYZabcdefhijkmnprstuwxyz"
SYMBOLS = "?!&#@%$*+=<>[]{};:§¶©®€£¥¿¡"
# kind -> share of the strangers
KINDS: dict[str, float] = {
    "blank": 0.05,
    "specks": 0.05,
    "noise": 0.07,
    "texture": 0.08,
    "letters": 0.40,
    "symbols": 0.22,
    "scribble": 0.06,
    "shapes": 0.07,
}


def _glyph_mask(rng: np.random.Generator, text: str, size: int, fonts: list[str]) -> np.ndarray | None:
    """`text` in a random Latin typeface and weight, rotated, sheared and placed as the numerals are."""
    spec = FONTS[fonts[int(rng.integers(len(fonts)))]]
    faces = font_faces(spec, "latn")  # a Latin face's file draws the letters and marks as well as the digits
    path = str(faces[int(rng.integers(len(faces)))][0])
    scale = 2
    font = load_font(path, 0, int(size * scale))
    axes = variation_axes(font)
    if axes:
        font = font.font_variant()  # a private copy: the cached font keeps its default variation
        values = []
        for axis in axes:
            name = axis.get("name", b"")
            name = (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()
            lo, hi, default = axis["minimum"], axis["maximum"], axis["default"]
            values.append(lo + (hi - lo) * rng.random() if name.startswith("weight") else default)
        font.set_variation_by_axes(values)
    mask, bbox = render_mask(font, text)
    if bbox is None:
        return None
    glyph = mask.crop(bbox)
    w, h = glyph.size
    side = size * scale
    fill = rng.uniform(0.45, 0.9) * side / max(w, h)
    squeeze = rng.uniform(0.7, 1.3)
    glyph = glyph.resize((max(1, round(w * fill * squeeze)), max(1, round(h * fill / squeeze))), Image.BILINEAR)
    glyph = glyph.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, expand=True)
    if max(glyph.size) > 0.95 * side:
        k = 0.95 * side / max(glyph.size)
        glyph = glyph.resize((max(1, round(glyph.size[0] * k)), max(1, round(glyph.size[1] * k))), Image.BILINEAR)
    canvas = Image.new("L", (side, side), 0)
    room = (side - glyph.size[0], side - glyph.size[1])
    at = [int(r / 2 + rng.uniform(-0.25, 0.25) * r) for r in room]
    canvas.paste(glyph, (max(0, at[0]), max(0, at[1])))
    if rng.random() < 0.25:
        canvas = canvas.filter(ImageFilter.MaxFilter(3))
    return np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _scribble(rng: np.random.Generator, size: int) -> np.ndarray:
    side = size * 2
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 7))):
        points = [tuple(rng.uniform(0.1, 0.9, size=2) * side)]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(8, 20))):
            heading += rng.normal(0, 0.9)
            step = rng.uniform(0.04, 0.12) * side
            x = float(np.clip(points[-1][0] + step * np.cos(heading), 0.05 * side, 0.95 * side))
            y = float(np.clip(points[-1][1] + step * np.sin(heading), 0.05 * side, 0.95 * side))
            points.append((x, y))
        draw.line(points, fill=255, width=int(rng.integers(2, max(3, side // 14))), joint="curve")
    return np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _shape(rng: np.random.Generator, size: int) -> np.ndarray:
    side = size * 2
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform(0.3, 0.7, size=2) * side
        radius = rng.uniform(0.15, 0.4) * side
        corners = int(rng.integers(3, 9))
        star = rng.random() < 0.35
        angles = (
            np.sort(rng.uniform(0, 2 * np.pi, size=corners)) if not star else np.linspace(0, 2 * np.pi, 2 * corners)
        )
        radii = radius * (
            np.where(np.arange(len(angles)) % 2, 0.45, 1.0) if star else rng.uniform(0.7, 1.0, len(angles))
        )
        points = [(float(centre[0] + r * np.cos(a)), float(centre[1] + r * np.sin(a))) for a, r in zip(angles, radii)]
        if rng.random() < 0.5:
            draw.polygon(points, fill=255)
        else:
            draw.polygon(points, outline=255, width=int(rng.integers(2, max(3, side // 12))))
    return np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like surface as grey levels (not ink on paper)."""
    base = rng.uniform(60, 220)
    kind = rng.random()
    if kind < 0.5:  # smooth fields at several scales: stone, fabric, clouds
        image = sum(coarse_field(rng, size, g) * rng.uniform(5, 40) for g in rng.integers(2, size // 2, size=3))
    elif kind < 0.75:  # stripes or checks, at an angle
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, size / 3)
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        if rng.random() < 0.4:
            wave = wave * np.sin(2 * np.pi * (yy * np.cos(angle) - xx * np.sin(angle)) / period)
        image = wave * rng.uniform(20, 80)
    else:  # grain: noise blurred to a random scale
        from scipy.ndimage import gaussian_filter

        grain = gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), rng.uniform(0.5, 3))
        image = grain / max(float(np.abs(grain).max()), 1e-6) * rng.uniform(20, 80)
    return base + image


def draw_stranger(
    kind: str, rng: np.random.Generator, size: int, fonts: list[str], clean_share: float = CLEAN_SHARE
) -> Image.Image:
    """One stranger of `kind` (a key of KINDS): a grayscale image of side `size`, printed as the numerals are
    (paper.py); drawn strangers and blank pages are printed clean `clean_share` of the time."""
    printed_clean = kind not in ("noise", "texture") and clean_share > 0 and rng.random() < clean_share
    if kind == "blank":
        if printed_clean:
            return clean(np.zeros((size, size), np.float32))
        pixels = paper(rng, size)
        if rng.random() < 0.15:
            pixels = 255 - pixels
    elif kind == "noise":
        pixels = paper(rng, size)
        roll = rng.random()
        if roll < 0.4:
            pixels = pixels + rng.normal(0, rng.uniform(15, 90), size=(size, size))
        elif roll < 0.7:
            salt = rng.random((size, size))
            share = rng.uniform(0.02, 0.3)
            pixels = np.where(salt < share / 2, 0, np.where(salt > 1 - share / 2, 255, pixels))
        else:
            blotches = np.clip(coarse_field(rng, size, int(rng.integers(6, max(7, size // 3)))), 0, None)
            pixels = ink_on_paper(np.clip(blotches * rng.uniform(0.3, 1.0), 0, 1), rng)
    elif kind == "texture":
        pixels = _texture(rng, size)
    else:
        coverage = _coverage(kind, rng, size, fonts)
        if printed_clean:
            return clean(coverage)
        pixels = ink_on_paper(coverage, rng)
    return jpeg(blur_and_noise(pixels, rng), rng)


def _coverage(kind: str, rng: np.random.Generator, size: int, fonts: list[str]) -> np.ndarray:
    """The ink (0..1) of a drawn stranger: specks, letters, symbols, a scribble or shapes."""
    if kind == "specks":
        dots = np.zeros((size, size), dtype=np.float32)
        for _ in range(int(rng.integers(1, 6))):
            y, x = rng.integers(0, size, size=2)
            r = int(rng.integers(0, 2))
            dots[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = rng.uniform(0.3, 1.0)
        return dots
    if kind in ("letters", "symbols"):
        alphabet = LETTERS if kind == "letters" else SYMBOLS
        count = 2 if kind == "letters" and rng.random() < 0.25 else 1
        text = "".join(alphabet[int(rng.integers(len(alphabet)))] for _ in range(count))
        mask = _glyph_mask(rng, text, size, fonts)
        return mask if mask is not None else np.zeros((size, size), np.float32)
    if kind == "scribble":
        return _scribble(rng, size)
    if kind == "shapes":
        return _shape(rng, size)
    raise ValueError(f"unknown kind of stranger {kind!r}; choose among {', '.join(KINDS)}")


def draw_strangers(
    count: int,
    seed: int = 0,
    image_size: int = 48,
    holdout: bool = False,
    kinds: tuple[str, ...] | None = None,
    clean_share: float = CLEAN_SHARE,
) -> tuple[list[bytes], list[str]]:
    """`count` strangers as PNG bytes, and the kind of each: every image from its own seeded generator.

    The kinds come in the shares of KINDS (or evenly among `kinds`), in a fixed order; `clean_share` of the drawn
    ones (and of blank pages) are printed pure black on pure white.
    """
    train, held = SCRIPT_FONTS["latn"]
    fonts = held if holdout and held else train
    chosen = kinds or tuple(KINDS)
    shares = np.array([KINDS[k] for k in chosen]) if kinds is None else np.ones(len(chosen))
    exact = shares / shares.sum() * count
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: count - quota.sum()]] += 1  # largest remainders
    images, labels = [], []
    for kind, n in zip(chosen, quota):
        for index in range(int(n)):
            rng = np.random.default_rng([seed, zlib.crc32(f"strangers/{kind}".encode()), index, int(holdout)])
            buffer = io.BytesIO()
            draw_stranger(kind, rng, image_size, fonts, clean_share).save(buffer, format="PNG")
            images.append(buffer.getvalue())
            labels.append(kind)
    return images, labels


# The source PolyDigits writes: labelled with the refusal concept of recipes/labels/digits-or-none.yaml,
# in no language (BCP-47 `zxx`, no linguistic content) and the Common script.
SOURCE = {"name": "strangers", "language": "zxx", "script": "Zyyy", "label": "none"}


def check_strangers(count, per_class: int) -> int:
    """The number of strangers to draw: `count`, or twenty digits' worth (20 * per_class) when None."""
    if count is None:
        return 20 * per_class
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise UserError(f"strangers must be a whole number of images, 0 or more, got {count!r}")
    return int(count)


def write_strangers_source(folder, count: int, seed: int, image_size: int) -> tuple[dict, list[bytes], str]:
    """Write the strangers source (one parquet file) under `folder`: (its recipe entry, the images, a README
    section)."""
    images, kinds = draw_strangers(count, seed, image_size)
    path = folder / SOURCE["name"] / "data.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": b, "path": None} for b in images],
            "label": [SOURCE["label"]] * len(images),
            "kind": kinds,
        }
    )
    data.cast_column("image", datasets.Image()).to_parquet(str(path))
    entry = {
        "name": SOURCE["name"],
        "path": f"{SOURCE['name']}/data.parquet",
        "language": SOURCE["language"],
        "script": SOURCE["script"],
        "image_column": "image",
        "label_column": "label",
    }
    shares = ", ".join(f"{kind} {kinds.count(kind):,}" for kind in KINDS)
    section = "\n".join(
        [
            "## Strangers",
            "",
            f"`strangers` ({len(images):,} images, labelled `{SOURCE['label']}`, language `{SOURCE['language']}`, "
            f"script `{SOURCE['script']}`): no numeral of any system, for a model to learn to refuse ({shares}). "
            "Letters and marks that are a numeral's shape in some system (O, l, q, V, dots, dashes…) are "
            "never drawn; see `polyglot_vision/builtin_data/strangers.py`.",
            "",
        ]
    )
    return entry, images, section
