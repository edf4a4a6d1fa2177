"""Handwriting a model never trained on, at several framings: scikit-learn's 1,797 UCI digits.

The digits (8 x 8 scans, 0 = paper .. 16 = ink, 43 writers) share no writer with the MNIST sample
PolyDigits trains on. A classifier that only reads digits framed the way its training data frames them
fails on the same handwriting framed otherwise, so the set is drawn several ways:

    tight          the 8 x 8 scan upscaled: the digit fills the frame (size-normalised, as UCI made it)
    margin         the scan pasted on a 12 x 12 page, then upscaled: a margin like a scanned box
    thin, thick    the margin framing with strokes eroded or dilated
    light-on-dark  the margin framing, inverted (chalk on a board, a dark-mode screen)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

FRAMINGS = ("tight", "margin", "thin", "thick", "light-on-dark")


def handwriting_framings(size: int = 48) -> dict[str, tuple[list[Image.Image], list[str]]]:
    """{framing: (RGB images of side `size`, concept ids "0" … "9")} for every framing of FRAMINGS."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = [str(t) for t in digits.target]
    sets: dict[str, list[Image.Image]] = {framing: [] for framing in FRAMINGS}
    for pixels in digits.images:
        scan = Image.fromarray((255 - pixels * (255 / 16)).astype(np.uint8))  # dark ink on light paper
        page = Image.new("L", (12, 12), 255)
        page.paste(scan, (2, 2))
        margin = page.resize((size, size), Image.Resampling.BICUBIC)
        stroke = max(3, (size // 16) | 1)  # an odd filter size, about a sixteenth of the side
        sets["tight"].append(scan.resize((size, size), Image.Resampling.BICUBIC))
        sets["margin"].append(margin)
        sets["thin"].append(margin.filter(ImageFilter.MaxFilter(stroke)))  # light paper eats into the ink
        sets["thick"].append(margin.filter(ImageFilter.MinFilter(stroke)))
        sets["light-on-dark"].append(ImageOps.invert(margin))
    return {framing: ([image.convert("RGB") for image in images], labels) for framing, images in sets.items()}
