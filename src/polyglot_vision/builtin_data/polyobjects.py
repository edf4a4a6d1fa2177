"""PolyObjects: things people photograph, drawn by twelve emoji design teams, each labelled in its own language.

Every design (`@iconify-json/*` on npm: SVG bodies in `icons.json`) is one source, and its folder labels are the
Unicode CLDR names (`cldr-annotations-full`, the "tts" name) in the one language that source speaks, so that
"Katze", "ネコ" and "قطة" name the same cat drawn by three teams. Which emoji count as things is not a hand list:
Unicode's emoji subgroups (`emojibase-data`'s group table) say which are animals, plants, food, vehicles,
buildings and household objects, and `FAMILIES` below keeps those subgroups (no faces, people, hands, flags or
symbols). A concept is kept when at least `MIN_DESIGNS` of the twelve designs draw it and its names are distinct
in every display language; its id is its English CLDR name ("cat", "hot pepper"). `select_concepts()` applies the
rule to the packages and `write_concept_table()` keeps its answer beside this module (polyobjects.json: code
point, family and each design's icon name), the reviewed list that generation reads.

Images are rasterised with resvg (`resvg-py`) as RGB on white, one canonical drawing and `per_class - 1` variants
(scale, rotation and position, set in the SVG so they stay crisp), deterministic for a seed.

The registry recipes/labels/polyobjects.yaml is written from the same selection (`registry()`): display names in
`DISPLAY_LANGUAGES`, each from CLDR. Every design's labelling language is among them, so `prepare` maps a folder
label by its name, as it does digits; what the registry does not list is a different test: the align benchmark
labels designs in languages the registry lacks, and the aligner has only the text embedding and the images.

    generate_polyobjects("data/polyobjects")                # every design; `sources.yaml` lists them
    generate_polyobjects(out, designs=["twemoji", "openmoji"], concepts=["cat", "dog"], per_class=2)
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import resvg_py
import yaml
from PIL import Image
from tqdm.auto import tqdm

from ..errors import UserError
from ..outputs import atomic_directory
from .assets import asset_file, load_lock

__all__ = [
    "DESIGNS",
    "DISPLAY_LANGUAGES",
    "FAMILIES",
    "Design",
    "ObjectConcept",
    "cldr_names",
    "generate_polyobjects",
    "object_concepts",
    "registry",
    "render_icon",
    "select_concepts",
    "write_concept_table",
    "write_registry",
]


@dataclass(frozen=True)
class Design:
    name: str  # the design's iconify prefix, also the source's name stem
    language: str  # the one language its folder labels are written in (BCP-47)
    script: str  # ISO 15924 of those labels
    lineage: str  # designs by one team share a lineage; held-out evaluation holds out whole lineages
    held_out: bool  # never trained on: the yardstick

    @property
    def package(self) -> str:
        return f"@iconify-json/{self.name}"

    @property
    def source(self) -> str:
        return f"{self.name}-{self.language}"


DESIGNS: tuple[Design, ...] = (
    Design("twemoji", "en", "Latn", "twemoji", True),
    Design("noto", "ja", "Jpan", "noto", True),
    Design("noto-v1", "zh", "Hans", "noto", True),
    Design("openmoji", "fr", "Latn", "openmoji", False),
    Design("fluent-emoji", "de", "Latn", "fluent", False),
    Design("fluent-emoji-flat", "ar", "Arab", "fluent", False),
    Design("fluent-emoji-high-contrast", "ru", "Cyrl", "fluent", False),
    Design("emojione", "hi", "Deva", "emojione", False),
    Design("emojione-v1", "es", "Latn", "emojione", False),
    Design("emojione-monotone", "ko", "Kore", "emojione", False),
    Design("fxemoji", "it", "Latn", "fxemoji", False),
    Design("streamline-emojis", "pt", "Latn", "streamline", False),
)
_DESIGN = {d.name: d for d in DESIGNS}

# The registry's display languages: every labelling language above, so that a user reads any answer in the
# language of any source.
DISPLAY_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "ru", "ar", "hi", "ja", "zh", "ko")

# Unicode emoji subgroup -> concept family; subgroups not named here (faces, people, hands, flags, symbols,
# clocks, weather, events) are not things people photograph.
FAMILIES = {
    **dict.fromkeys(
        ["animal-mammal", "animal-bird", "animal-amphibian", "animal-reptile", "animal-marine", "animal-bug"],
        "animals",
    ),
    **dict.fromkeys(["plant-flower", "plant-other"], "plants"),
    **dict.fromkeys(
        ["food-fruit", "food-vegetable", "food-prepared", "food-asian", "food-sweet", "drink", "dishware"], "food"
    ),
    **dict.fromkeys(["transport-ground", "transport-water", "transport-air"], "vehicles"),
    **dict.fromkeys(["place-building", "place-religious", "place-other", "place-geographic"], "places"),
    **dict.fromkeys(["tool", "science", "medical"], "tools"),
    **dict.fromkeys(["household", "phone", "computer", "musical-instrument", "sport", "hotel"], "household"),
    "clothing": "clothing",
}
MIN_DESIGNS = 11

_GROUPS = ("emojibase-data", "meta/groups.json")
_EMOJI = ("emojibase-data", "en/data.json")
_UNICODE_NAMES = ("emojibase-data", "meta/unicode-names.json")
_CLDR = "cldr-annotations-full"
_VARIATION_SELECTOR = "fe0f"
CONCEPT_TABLE = Path(__file__).with_name("polyobjects.json")


@dataclass(frozen=True)
class ObjectConcept:
    id: str  # the English CLDR name
    codepoint: str  # lower-case hex, one code point
    family: str
    subgroup: str
    icons: dict  # design name -> icon name in that design's icons.json

    @property
    def emoji(self) -> str:
        return chr(int(self.codepoint, 16))


def _json(package: str, path: str):
    return json.loads(asset_file(package, path).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _icon_set(design: str) -> dict:
    return _json(_DESIGN[design].package, "icons.json")


@lru_cache(maxsize=None)
def cldr_names(language: str) -> dict[str, str]:
    """{emoji: CLDR "tts" name} in one language, NFC, variation selectors left out of the keys."""
    try:
        table = _json(_CLDR, f"annotations/{language}/annotations.json")["annotations"]["annotations"]
    except UserError as err:
        if "has no file" in str(err):
            raise UserError(f"CLDR has no emoji names in language {language!r}") from None
        raise
    return {
        key.replace("\ufe0f", ""): unicodedata.normalize("NFC", value["tts"][0])
        for key, value in table.items()
        if value.get("tts")
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _icon_names(design: str) -> dict[str, str]:
    """{code point: icon name} of one design: from its chars.json when it has one, else by the icon's name,
    which every design here spells after the emoji's CLDR or Unicode name (fxemoji without hyphens)."""
    chars = _json(_DESIGN[design].package, "chars.json")
    icons = _icon_set(design)
    known = set(icons["icons"]) | set(icons.get("aliases", {}))
    table = {}
    for hexcode, name in chars.items():
        parts = [p for p in hexcode.lower().split("-") if p != _VARIATION_SELECTOR]
        if len(parts) == 1 and name in known:
            table[parts[0]] = name
    return table


def _match_by_name(known: set[str], names: list[str]) -> str | None:
    for name in names:
        for spelling in (_slug(name), _slug(name).replace("-", "")):
            if spelling and spelling in known:
                return spelling
    return None


# `datasets` reads a class folder as a split when one of its words is a split's name (French "train de montagne" is
# a mountain railway, "train" a train): no usable label.
_SPLIT_WORDS = {"train", "training", "test", "testing", "eval", "evaluation", "valid", "validation", "val", "dev"}
_WORD_SEPARATORS = re.compile(r"[-._ 0-9]+")


def _folder_safe(name: str) -> bool:
    return (
        bool(name)
        and not {"/", "\\", "\x00"} & set(name)
        and not name.startswith(".")
        and not _SPLIT_WORDS & set(_WORD_SEPARATORS.split(name.casefold()))
    )


def select_concepts() -> tuple[ObjectConcept, ...]:
    """Every PolyObjects concept, in Unicode's emoji order, chosen from the pinned packages by the rule of the
    module's docstring. Slow (it reads every design's icons); `object_concepts()` reads what it wrote."""
    subgroups = _json(*_GROUPS)["subgroups"]
    unicode_names = {k.lower(): v for k, v in _json(*_UNICODE_NAMES).items()}
    english = cldr_names("en")
    by_chars = {d.name: _icon_names(d.name) for d in DESIGNS}
    known = {d.name: set(_icon_set(d.name)["icons"]) | set(_icon_set(d.name).get("aliases", {})) for d in DESIGNS}
    names = {language: cldr_names(language) for language in DISPLAY_LANGUAGES}
    chosen = []
    for entry in sorted(_json(*_EMOJI), key=lambda e: e.get("order", 0)):
        subgroup = subgroups.get(str(entry.get("subgroup")))
        parts = [p for p in entry["hexcode"].lower().split("-") if p != _VARIATION_SELECTOR]
        if subgroup not in FAMILIES or len(parts) != 1:
            continue
        codepoint = parts[0]
        emoji = chr(int(codepoint, 16))
        if emoji not in english:
            continue
        spellings = [english[emoji], unicode_names.get(codepoint, "")]
        icons = {}
        for design in DESIGNS:
            icon = by_chars[design.name].get(codepoint) or _match_by_name(known[design.name], spellings)
            if icon is not None:
                icons[design.name] = icon
        if not all(_folder_safe(names[language].get(emoji, "")) for language in DISPLAY_LANGUAGES):
            continue
        chosen.append(ObjectConcept(english[emoji], codepoint, FAMILIES[subgroup], subgroup, icons))
    # A design that draws two concepts alike (one drawing for "optical disk" and "dvd") tells neither apart:
    # it draws neither of them.
    for design in DESIGNS:
        drawings = Counter(repr(_icon(design.name, c.icons[design.name])) for c in chosen if design.name in c.icons)
        for concept in chosen:
            icon = concept.icons.get(design.name)
            if icon is not None and drawings[repr(_icon(design.name, icon))] > 1:
                del concept.icons[design.name]
    chosen = [c for c in chosen if len(c.icons) >= MIN_DESIGNS]
    # A name that two concepts share in any language would merge two folders: both concepts go.
    clashes = set()
    for language in DISPLAY_LANGUAGES:
        count = Counter(names[language][c.emoji].casefold() for c in chosen)
        clashes |= {c.id for c in chosen if count[names[language][c.emoji].casefold()] > 1}
    return tuple(c for c in chosen if c.id not in clashes)


@lru_cache(maxsize=1)
def object_concepts() -> tuple[ObjectConcept, ...]:
    """The PolyObjects concepts as `select_concepts()` chose them, read from the table kept beside this module
    (polyobjects.json), so that drawing a few designs reads only those designs' icons."""
    rows = json.loads(CONCEPT_TABLE.read_text(encoding="utf-8"))["concepts"]
    return tuple(ObjectConcept(**row) for row in rows)


def write_concept_table(path: Path | None = None) -> Path:
    """Write polyobjects.json from the pinned packages (maintainers, when a pinned package changes)."""
    path = Path(path or CONCEPT_TABLE)
    text = json.dumps({"concepts": [vars(c) for c in select_concepts()]}, ensure_ascii=False, indent=1) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    object_concepts.cache_clear()
    return path


def registry() -> dict:
    """The label registry of PolyObjects (recipes/labels/polyobjects.yaml): ids, families, CLDR names."""
    names = {language: cldr_names(language) for language in DISPLAY_LANGUAGES}
    return {
        "name": "polyobjects",
        "default_language": "en",
        "concepts": [
            {
                "id": c.id,
                "emoji": c.codepoint,
                "family": c.family,
                "names": {language: names[language][c.emoji] for language in DISPLAY_LANGUAGES},
            }
            for c in object_concepts()
        ],
    }


def write_registry(path) -> Path:
    path = Path(path)
    header = (
        "# PolyObjects concepts, written by polyglot_vision.builtin_data.polyobjects.registry() "
        "(python scripts/make_polyobjects_registry.py):\n"
        "# Unicode's emoji subgroups of things people photograph, drawn by at least "
        f"{MIN_DESIGNS} of the 12 designs; names are the\n"
        "# Unicode CLDR 'tts' names (cldr-annotations-full, Unicode-3.0), as each language's community writes them.\n"
    )
    text = header + yaml.safe_dump(registry(), allow_unicode=True, sort_keys=False, width=200)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _icon(design: str, name: str) -> dict:
    """An icon's body and canvas, with an alias resolved to its parent (flips kept)."""
    icons = _icon_set(design)
    flips = {"hFlip": False, "vFlip": False}
    extra: dict = {}
    for _ in range(8):
        if name in icons["icons"]:
            icon = {**icons["icons"][name], **extra}
            break
        alias = icons.get("aliases", {})[name]
        for key in flips:
            flips[key] ^= bool(alias.get(key, False))
        extra = {k: v for k, v in alias.items() if k in ("width", "height", "left", "top")} | extra
        name = alias["parent"]
    else:
        raise UserError(f"{design}: icon alias chain of {name!r} does not end")
    width = icon.get("width", icons.get("width", 16))
    height = icon.get("height", icons.get("height", 16))
    body = icon["body"]
    if icon.get("hFlip", False) ^ flips["hFlip"]:
        body = f'<g transform="translate({width} 0) scale(-1 1)">{body}</g>'
    if icon.get("vFlip", False) ^ flips["vFlip"]:
        body = f'<g transform="translate(0 {height}) scale(1 -1)">{body}</g>'
    return {"body": body, "left": icon.get("left", 0), "top": icon.get("top", 0), "width": width, "height": height}


def render_icon(
    design: str,
    icon_name: str,
    size: int,
    *,
    scale: float = 1.0,
    rotate: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> Image.Image:
    """One icon as an RGB image on white, `size` pixels square; scale, rotation (degrees) and shift (a fraction of
    the canvas) are applied to the vector drawing."""
    icon = _icon(design, icon_name)
    side = max(icon["width"], icon["height"])
    left = icon["left"] - (side - icon["width"]) / 2
    top = icon["top"] - (side - icon["height"]) / 2
    cx, cy = left + side / 2 + shift[0] * side, top + side / 2 + shift[1] * side
    ox, oy = left + side / 2, top + side / 2
    transform = f"translate({cx:.3f} {cy:.3f}) rotate({rotate:.2f}) scale({scale:.4f}) translate({-ox:.3f} {-oy:.3f})"
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{left:g} {top:g} {side:g} {side:g}" width="{size}" height="{size}" style="color:#000">'
        f'<g transform="{transform}">{icon["body"]}</g></svg>'
    )
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _variant(rng: np.random.Generator, index: int) -> dict:
    if index == 0:
        return {}
    scale = float(rng.uniform(0.65, 1.0))
    room = (1 - scale) / 2
    return {
        "scale": scale,
        "rotate": float(rng.uniform(-15, 15)),
        "shift": (float(rng.uniform(-room, room)), float(rng.uniform(-room, room))),
    }


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _pick(kind: str, wanted, known: list[str]) -> list[str]:
    if wanted is None:
        return known
    wanted = [str(w) for w in wanted]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UserError(f"unknown PolyObjects {kind} {unknown[0]!r} (known: {', '.join(known[:12])}, …)")
    return [k for k in known if k in wanted]


def _readme(designs: list[Design], concepts: list[ObjectConcept], counts: dict, per_class: int, seed: int, size):
    lock = load_lock()
    families = Counter(c.family for c in concepts)
    lines = [
        "# PolyObjects",
        "",
        f"{len(concepts)} concepts of things people photograph ("
        + ", ".join(f"{f} {n}" for f, n in sorted(families.items()))
        + f") drawn by {len(designs)} emoji designs, each labelled in one language with the concept's Unicode CLDR "
        f"name. Written by `polyglot_vision.builtin_data.polyobjects.generate_polyobjects` (per_class={per_class}, "
        f"seed={seed}, image_size={size}): RGB PNG on white, rasterised with resvg; the first image of each "
        "folder is the design as drawn, the others are scaled (0.65-1), rotated (±15°) and moved in the frame.",
        "",
        "`sources.yaml` lists every source in recipe format (paths relative to this folder); the designs marked "
        "held out below are never trained on by the PolyObjects recipes: they are the yardstick.",
        "",
        "## Sources",
        "",
        "| source | design | language | script | lineage | held out | concepts | images | licence | author |",
        "|---|---|---|---|---|---|---:|---:|---|---|",
    ]
    for d in designs:
        info = _json(d.package, "info.json")
        package = lock[d.package]
        author = info.get("author", {})
        lines.append(
            f"| `{d.source}` | {info.get('name', d.name)} (`{package.spec}`) | {d.language} | {d.script} | "
            f"{d.lineage} | {'yes' if d.held_out else 'no'} | {sum(d.name in c.icons for c in concepts)} | "
            f"{counts[d.source]:,} | {package.license} | [{author.get('name', '?')}]({author.get('url', '')}) |"
        )
    cldr, groups = lock[_CLDR], lock[_GROUPS[0]]
    lines += [
        "",
        "## Licences and attributions",
        "",
        "Each design's drawings are used under the licence its package declares (table above; CC-BY-SA designs "
        "share alike: images of them are CC-BY-SA-4.0). Names: Unicode CLDR annotations "
        f"(`{cldr.spec}`, {cldr.license}). Emoji groups: `{groups.spec}` ({groups.license}). "
        "All packages are pinned by version and integrity hash in the tool's assets.lock.json.",
        "",
    ]
    return "\n".join(lines)


def generate_polyobjects(
    out_dir,
    *,
    per_class: int = 8,
    seed: int = 0,
    image_size: int = 48,
    designs=None,
    concepts=None,
    progress: bool = True,
) -> list[dict]:
    """Write one image folder per design under out_dir and return the source entries (recipe format).

    per_class images of each concept for each design that draws it; `designs` and `concepts` (ids) narrow the set.
    The folder appears whole when complete (written to a temporary sibling and renamed).
    """
    for key, value, lo, hi in (("per_class", per_class, 1, 1000), ("image_size", image_size, 16, 512)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise UserError(f"{key} must be an integer from {lo} to {hi}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir).expanduser().resolve()
    chosen_designs = [_DESIGN[n] for n in _pick("design", designs, [d.name for d in DESIGNS])]
    everything = {c.id: c for c in object_concepts()}
    chosen = [everything[i] for i in _pick("concept", concepts, list(everything))]
    total = sum(per_class for d in chosen_designs for c in chosen if d.name in c.icons)

    entries, counts = [], {}
    with (
        atomic_directory(out_dir, what="PolyObjects folder") as tmp,
        tqdm(total=total, desc="PolyObjects", unit="img", disable=not progress) as bar,
    ):
        for design in chosen_designs:
            names = cldr_names(design.language)
            count = 0
            for concept in chosen:
                icon = concept.icons.get(design.name)
                if icon is None:
                    continue
                folder = tmp / design.source / names[concept.emoji]
                folder.mkdir(parents=True)
                rng = np.random.default_rng([seed, int(concept.codepoint, 16), DESIGNS.index(design)])
                for index in range(per_class):
                    image = render_icon(design.name, icon, int(image_size), **_variant(rng, index))
                    (folder / f"{index:04d}.png").write_bytes(_png(image))
                count += per_class
                bar.update(per_class)
            counts[design.source] = count
            entries.append(
                {
                    "name": design.source,
                    "path": design.source,
                    "language": design.language,
                    "script": design.script,
                    "license": load_lock()[design.package].license.lower(),
                }
            )
        (tmp / "sources.yaml").write_text(
            "# PolyObjects sources (recipe format); paths are relative to this file's folder\n"
            + yaml.safe_dump({"sources": entries}, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
        # What a yardstick needs without knowing PolyObjects: each folder label's concept, each concept's family,
        # and which sources no recipe trains on.
        answers = {
            "concepts": [{"id": c.id, "emoji": c.codepoint, "family": c.family} for c in chosen],
            "held_out": [d.source for d in chosen_designs if d.held_out],
            "labels": {
                d.source: {cldr_names(d.language)[c.emoji]: c.id for c in chosen if d.name in c.icons}
                for d in chosen_designs
            },
        }
        (tmp / "concepts.json").write_text(json.dumps(answers, ensure_ascii=False, indent=1), encoding="utf-8")
        (tmp / "README.md").write_text(
            _readme(chosen_designs, chosen, counts, int(per_class), int(seed), int(image_size)), encoding="utf-8"
        )
    return [{**e, "path": str(out_dir / e["path"])} for e in entries]
