"""Paper and ink: how PolyDigits lays a drawn glyph on a page, numerals and strangers alike.

A glyph is ink coverage, 0..1 per pixel. Printed, it lands on paper of some tone, texture and lighting, in ink of
some tone, then is blurred, noisy or JPEG-compressed. Printed clean, it is pure black on pure white and nothing
else, as a drawing pad, a screenshot or a font drawn on a computer gives it. The real handwriting (MNIST) is always
clean; a share of every other source is clean too (CLEAN_SHARE), so that a clean page says nothing about what is
on it: a model that saw only handwriting clean reads any clean drawing, a letter included, as a digit.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

# the share of rendered numerals (synthesis ingredient "clean") and of strangers printed clean
CLEAN_SHARE = 0.25


def coarse_field(rng: np.random.Generator, size: int, grid: int) -> np.ndarray:
    """Smooth random field: a grid x grid normal sample upsampled bicubically to size x size."""
    coarse = rng.standard_normal((grid, grid)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))


def paper(rng: np.random.Generator, size: int) -> np.ndarray:
    """A page's grey levels: a tone, half the time a texture, sometimes uneven lighting."""
    page = np.full((size, size), rng.uniform(185, 255), dtype=np.float32)
    if rng.random() < 0.5:  # paper texture / uneven lighting
        page += coarse_field(rng, size, int(rng.integers(2, 6))) * rng.uniform(3, 15)
    if rng.random() < 0.3:  # lighting gradient
        gy, gx = np.mgrid[0:size, 0:size] / size - 0.5
        angle = rng.uniform(0, 2 * np.pi)
        page += (np.cos(angle) * gx + np.sin(angle) * gy) * rng.uniform(10, 40)
    return page


def ink_on_paper(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey levels of `coverage` printed in an ink tone, not quite opaque, on `paper`."""
    page = paper(rng, coverage.shape[0])
    ink = rng.uniform(0, 70)
    return page - (page - ink) * coverage * rng.uniform(0.85, 1.0)


def clean(coverage: np.ndarray) -> Image.Image:
    """`coverage` in pure black on pure white."""
    return Image.fromarray(np.clip(255 - 255 * coverage, 0, 255).astype(np.uint8))


def blur_and_noise(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A page's grey levels as an image, a third of the time blurred, mostly with sensor noise."""
    size = pixels.shape[0]
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9)) * size / 48))
    if rng.random() < 0.6:
        noisy = np.asarray(out, dtype=np.float32) + rng.normal(0, rng.uniform(2, 12), size=(size, size))
        out = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A fifth of the time, the image through a JPEG of low quality."""
    if rng.random() < 0.2:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(25, 80)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    return image
