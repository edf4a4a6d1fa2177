"""The images the refusal benchmark judges (experiments/refusal.py), none of which a PolyDigits model trained on.

strangers    every kind of builtin_data/strangers.py, with a seed of its own; letters and symbols drawn in
             the held-out Latin families only: all should be refused
clean        letters, symbols and a page printed pure black on pure white, as a drawing pad or a font on a
             screen gives them (held-out Latin families): all should be refused
numerals     the digits of every system that has held-out type families, drawn only with those: none should be
handwriting  the UCI digits at every framing of builtin_data/handwriting.py: none should be
"""

from __future__ import annotations

from pathlib import Path

import datasets

from .fonts import HOLDOUT_FONTS
from .handwriting import handwriting_framings
from .polydigits import SOURCES, generate_polydigits
from .strangers import KINDS, draw_strangers

# The held-out families are drawn with a fixed set of variations (as the generalization yardstick draws them), so
# that the measurement does not move with the training data's synthesis.
SYNTHESIS = ("axes", "strokes", "elastic")


def held_out_numerals(per_class: int, work: Path, seed: int = 1) -> dict[str, list]:
    """{numeral system: images} rendered only with held-out families (systems without any are left out)."""
    systems = {s.name: s.numerals for s in SOURCES}
    entries = generate_polydigits(
        work / "holdout", per_class=per_class, seed=seed, holdout_fonts=True, synthesis=SYNTHESIS, progress=False
    )
    sets: dict[str, list] = {}
    for entry in entries:
        if systems.get(entry["name"]) not in HOLDOUT_FONTS:
            continue
        path = str(entry["path"])
        if path.endswith(".parquet"):
            data = datasets.load_dataset("parquet", data_files=path, split="train")
        else:
            data = datasets.load_dataset("imagefolder", data_dir=path, split="train")
        sets.setdefault(systems[entry["name"]], []).extend(data[entry["image_column"]])
    return sets


def refusal_sets(work: Path, per_class: int = 30, per_kind: int = 100, seed: int = 1) -> dict[str, dict]:
    """{group: {"title", "refuse" (whether its images should be refused), "images": {subgroup: images}}}."""
    strangers = {
        kind: draw_strangers(per_kind, seed=seed, image_size=48, holdout=True, kinds=(kind,))[0] for kind in KINDS
    }
    clean = {
        kind: draw_strangers(per_kind, seed=seed, image_size=48, holdout=True, kinds=(kind,), clean_share=1.0)[0]
        for kind in ("letters", "symbols", "blank")
    }
    return {
        "strangers": {
            "title": "strangers (letters and symbols in held-out Latin families)",
            "refuse": True,
            "images": strangers,
        },
        "clean": {
            "title": "letters and symbols printed black on white (held-out Latin families)",
            "refuse": True,
            "images": clean,
        },
        "numerals": {
            "title": "numerals of held-out type families",
            "refuse": False,
            "images": held_out_numerals(per_class, Path(work), seed),
        },
        "handwriting": {
            "title": "real handwriting (UCI digits, every framing)",
            "refuse": False,
            "images": {framing: images for framing, (images, _) in handwriting_framings().items()},
        },
    }
