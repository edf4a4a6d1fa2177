"""The numeral systems PolyDigits draws and the typefaces it draws them with: the font table (fonts.yaml).

The table is data: one entry per typeface (or one style of it), with its family, style class, the
numeral systems it is verified to draw, its licence and the PyPI package that ships it. The generator
renders training images with the families whose `holdout` is false and the held-out set with the
others, so the same file decides both sides of the split.

    FONTS["Noto Sans Arabic"].scripts        # ('arab', 'pers')
    SCRIPT_FONTS["deva"]                     # (training fonts, held-out fonts)
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import yaml
from PIL import Image, ImageDraw, ImageFont, features

from ..errors import UserError

__all__ = [
    "FONT_PACKAGES",
    "FONTS",
    "HOLDOUT_FONTS",
    "NUMERALS",
    "SCRIPT_FONTS",
    "FontSpec",
    "check_raqm",
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


@dataclass(frozen=True)
class FontSpec:
    """One typeface of the table: its files inside a package (several static weights, or variable fonts)."""

    name: str
    family: str
    style: str
    scripts: tuple[str, ...]
    holdout: bool
    package: str  # PyPI name
    files: tuple[str, ...]  # relative to the package's import directory (or to the data path: root "data")
    licence: str
    index: int = 0  # face inside a .ttc collection
    module: str | None = None  # import directory, when it is not the package name
    root: str = "package"  # "package" or "data" (sysconfig's data path)
    group: str | None = None  # design lineage shared with other families
    note: str | None = None

    @property
    def import_name(self) -> str:
        return self.module or self.package.replace("-", "_")


def load_font_table(path: Path = TABLE) -> dict[str, FontSpec]:
    """{name: FontSpec}, checked: known scripts and styles, one `holdout` per family and per group."""
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    fonts: dict[str, FontSpec] = {}
    for entry in entries:
        try:
            spec = FontSpec(
                **{**entry, "scripts": tuple(entry["scripts"]), "files": tuple(entry["files"])},
            )
        except (TypeError, KeyError) as err:
            raise ValueError(f"{path}: entry {entry.get('name')!r}: {err}") from None
        unknown = [s for s in spec.scripts if s not in NUMERALS]
        if unknown or spec.style not in STYLES or spec.root not in ("package", "data") or spec.name in fonts:
            raise ValueError(f"{path}: entry {spec.name!r}: bad scripts, style, root or a duplicate name")
        fonts[spec.name] = spec
    for key in ("family", "group"):
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


@lru_cache(maxsize=None)
def package_dir(package: str, module: str, root: str) -> Path:
    """Where a font package's files are: its import directory (found, never imported), or the data path."""
    if root == "data":
        return Path(sysconfig.get_path("data"))
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"font package {package!r} is not installed; install it with: pip install {' '.join(FONT_PACKAGES)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def font_files(font: FontSpec) -> list[Path]:
    root = package_dir(font.package, font.import_name, font.root)
    paths = [root / f for f in font.files]
    for p in paths:
        if not p.is_file():
            raise UserError(f"font file {p.name} is missing from package {font.package!r}; reinstall it")
    return paths


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
