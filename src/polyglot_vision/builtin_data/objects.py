"""Synthetic image folders for the objects recipe and its tests: three sets labelled in English, French, German.

Real photos of cats and bicycles cannot ship with the repository, and these
machines cannot download them; what the objects recipe exercises is the label
side (folder names "Katze", "chat", "cats" meeting in one concept), so each
image is a small random texture tinted by its concept. Point the recipe at your
own folders to train on real photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# concept id -> folder name used by the English, French and German sets
OBJECT_FOLDERS = {
    "cat": ("cats", "chat", "Katze"),
    "dog": ("Dog", "chien", "Hund"),
    "horse": ("horse", "cheval", "Pferd"),
    "bird": ("bird", "oiseau", "Vogel"),
    "fish": ("fish", "poisson", "Fisch"),
    "car": ("car", "voiture", "Auto"),
    "bicycle": ("bicycle", "vélo", "Fahrrad"),
    "airplane": ("airplane", "avion", "Flugzeug"),
    "boat": ("boat", "bateau", "Boot"),
    "tree": ("tree", "arbre", "Baum"),
}
LANGUAGES = ("en", "fr", "de")


def write_object_folders(out: str | Path, per_class: int = 4, image_size: int = 32, seed: int = 0) -> list[dict]:
    """Write OUT/en, OUT/fr, OUT/de image folders (one subfolder per word); return their `sources:` entries."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    tints = {concept: rng.integers(40, 216, size=3) for concept in OBJECT_FOLDERS}
    sources = []
    for position, language in enumerate(LANGUAGES):
        for concept, words in OBJECT_FOLDERS.items():
            folder = out / language / words[position]
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                noise = rng.integers(-40, 41, size=(image_size, image_size, 3))
                pixels = np.clip(tints[concept] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="RGB").save(folder / f"{i:04d}.png")
        sources.append({"name": f"objects-{language}", "path": str(out / language), "language": language})
    return sources
