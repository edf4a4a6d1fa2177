"""The numeral systems PolyDigits draws and the typefaces it draws them with: the font table (fonts.yaml).

The table is data: one entry per type family, with its style class, publisher, design lineage, the numeral
systems it is verified to draw, its licence, and the fontsource npm package and files it is drawn from. The
packages are pinned in assets.lock.json and fetched by `polyglot-vision fetch`; every file is checked against
its recorded hash when it is used. The generator renders training images with the families whose `holdout` is
false and the held-out set with the others, so the same file decides both sides of the split.

    FONTS["Noto Sans Arabic"].scripts        # ('arab', 'pers')
    SCRIPT_FONTS["deva"]                     # (training fonts, held-out fonts)
    font_faces(FONTS["Noto Sans Khmer"], "khmr")   # [(path of 0, …, path of 9) per weight]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from PIL import Image, ImageDraw, ImageFont, features

from ..errors import UserError
from .assets import asset_file

__all__ = [
    "FONT_PACKAGES",
    "FONTS",
    "HOLDOUT_FONTS",
    "NUMERALS",
    "SCRIPT_FONTS",
    "FontSpec",
    "check_raqm",
    "font_faces",
    "font_files",
    "load_font",
    "load_font_table",
    "render_mask",
]

TABLE = Path(__file__).with_name("fonts.yaml")

# The ten digits of each numeral system, 0 to 9.
NUMERALS: dict[str, str] = {
    "latn": "0123456789",
    "arab": "٠١٢٣٤٥٦٧٨٩",
    "pers": "۰۱۲۳۴۵۶۷۸۹",
    "deva": "०१२३४५६७८९",
    "beng": "০১২৩৪৫৬৭৮৯",
    "gujr": "૦૧૨૩૪૫૬૭૮૯",
    "taml": "௦௧௨௩௪௫௬௭௮௯",
    "telu": "౦౧౨౩౪౫౬౭౮౯",
    "knda": "೦೧೨೩೪೫೬೭೮೯",
    "thai": "๐๑๒๓๔๕๖๗๘๙",
    "khmr": "០១២៣៤៥៦៧៨៩",
    "mymr": "၀၁၂၃၄၅၆၇၈၉",
    "hani": "〇一二三四五六七八九",
}

STYLES = ("sans", "serif", "slab", "naskh", "kufi", "display", "mono", "rounded", "handwriting")


Face = tuple[str, ...]  # the file that draws each of the ten digits (one file ten times, or ten Han slices)


@dataclass(frozen=True)
class FontSpec:
    """One type family of the table: the fontsource files it is drawn from, per numeral system."""

    name: str
    family: str
    style: str
    scripts: tuple[str, ...]
    holdout: bool
    package: str  # npm package (pinned in assets.lock.json)
    files: dict[str, tuple[Face, ...]]  # numeral system -> faces (one per weight or italic)
    licence: str
    group: str | None = None  # design lineage shared with other families
    publisher: str | None = None  # the designer or foundry
    copyright: str | None = None
    note: str | None = None


def _faces(value) -> tuple[Face, ...]:
    return tuple((f,) * 10 if isinstance(f, str) else tuple(f) for f in value)


def load_font_table(path: Path = TABLE) -> dict[str, FontSpec]:
    """{name: FontSpec}, checked: known scripts and styles, files for each script, one `holdout` per family,
    group and publisher."""
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    fonts: dict[str, FontSpec] = {}
    for entry in entries:
        try:
            files = {key: _faces(value) for key, value in entry["files"].items()}
            spec = FontSpec(**{**entry, "scripts": tuple(entry["scripts"]), "files": files})
        except (TypeError, KeyError, AttributeError) as err:
            raise ValueError(f"{path}: entry {entry.get('name')!r}: {err}") from None
        unknown = [s for s in spec.scripts if s not in NUMERALS]
        faces_ok = set(spec.files) == set(spec.scripts) and all(
            faces and all(len(face) == 10 for face in faces) for faces in spec.files.values()
        )
        if unknown or spec.style not in STYLES or not faces_ok or spec.name in fonts:
            raise ValueError(f"{path}: entry {spec.name!r}: bad scripts, style or files, or a duplicate name")
        fonts[spec.name] = spec
    for key in ("family", "group", "publisher"):
        sides: dict[str, set] = {}
        for spec in fonts.values():
            if getattr(spec, key):
                sides.setdefault(getattr(spec, key), set()).add(spec.holdout)
        split = sorted(name for name, held in sides.items() if len(held) > 1)
        if split:
            raise ValueError(f"{path}: {key} {', '.join(split)} on both sides of the held-out split")
    return fonts


FONTS: dict[str, FontSpec] = load_font_table()
FONT_PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(spec.package for spec in FONTS.values()))
# Numeral system -> (training fonts, held-out fonts), in table order.
SCRIPT_FONTS: dict[str, tuple[list[str], list[str]]] = {
    key: (
        [s.name for s in FONTS.values() if key in s.scripts and not s.holdout],
        [s.name for s in FONTS.values() if key in s.scripts and s.holdout],
    )
    for key in NUMERALS
}
HOLDOUT_FONTS: dict[str, list[str]] = {k: v[1] for k, v in SCRIPT_FONTS.items() if v[1]}


# --------------------------------------------------------------------------------------------------
# Font files
# --------------------------------------------------------------------------------------------------


def font_faces(font: FontSpec, key: str) -> list[tuple[Path, ...]]:
    """The faces that draw a numeral system, each as the ten checked files of digits 0 … 9; a file that is
    missing or altered is one line naming `polyglot-vision fetch`."""
    return [tuple(asset_file(font.package, f) for f in face) for face in font.files[key]]


def font_files(font: FontSpec) -> list[Path]:
    """Every file of a table entry, checked."""
    names = dict.fromkeys(f for faces in font.files.values() for face in faces for f in face)
    return [asset_file(font.package, f) for f in names]


def check_raqm() -> None:
    if not features.check("raqm"):
        raise UserError(
            "Pillow was built without raqm text layout, which Arabic and Indic digits need; "
            "install the official Pillow wheel (pip install --force-reinstall pillow)"
        )


@lru_cache(maxsize=None)
def load_font(path: str, index: int, size: int):
    return ImageFont.truetype(path, size=size, index=index, layout_engine=ImageFont.Layout.RAQM)


def variation_axes(font) -> list[dict]:
    try:
        return font.get_variation_axes()
    except OSError:  # not a variable font
        return []


def render_mask(font, text: str):
    """Render text white-on-black at its natural size; return the L image and its ink bbox."""
    side = int(2.2 * font.size) + 16  # room for any digit, whatever the font's metrics
    img = Image.new("L", (side, side), 0)
    ImageDraw.Draw(img).text((side / 2, side / 2), text, font=font, fill=255, anchor="mm")
    return img, img.getbbox()
