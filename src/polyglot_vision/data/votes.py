"""Image evidence for alignment: the images of a label whose text is uncertain vote for a concept.

`vote_by_images` compares every image of an uncertain label with the images of the labels already accepted in
the other sources (its own source's other labels are other concepts by the same hand, and would only teach it the
hand). For each accepted concept it takes the nearest of that concept's images; the image votes for the nearest
concept when that concept is clearly nearer than any other (by `GAP`: 12 % of its distance), and abstains when two
concepts are about as near, as they are for drawings that resemble no accepted concept, or several. The share of a
label's images voting for each concept is its image evidence (shares need not sum to 1: the rest abstained).

The same thing drawn by different hands shares its outline and its main colours more than its details, so the
features are the drawing's outline and its grey gradients, both cropped to the drawing (its size and place in the
frame do not count), and a coarse colour layout:

- gradient orientation histograms (4 x 4 cells) and an 8 x 8 thumbnail of the grey image;
- the same of the silhouette (the pixels that are not background), which no shading or line style changes;
- a 4 x 4 colour thumbnail, weighed at half (monochrome designs and glyphs have no colour to say anything).

They cost a few milliseconds an image on one CPU core. The votes alone are not enough to merge: labels/alignment.py
accepts a label by its images only where its text evidence names the same concept first. The hook
`unify(image_votes=…)` lets a stronger model take this one's place.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from ..images import to_rgb_or_gray

logger = logging.getLogger(__name__)

GAP = 0.12  # least lead, as a share of its distance, of the nearest concept over the next for an image to vote
SIZE, CELLS, BINS = 32, 4, 8
COLOUR_WEIGHT = 0.5


def _unit(v: np.ndarray) -> np.ndarray:
    v = v.ravel().astype(np.float32)
    return v / (np.linalg.norm(v) + 1e-6)


def _shape_blocks(pixels: np.ndarray) -> list[np.ndarray]:
    """Orientation histograms (CELLS x CELLS cells of BINS) and an 8 x 8 thumbnail of a SIZE x SIZE image."""
    pixels = (pixels - pixels.mean()) / (pixels.std() + 1e-3)
    gy, gx = np.gradient(pixels)
    magnitude = np.hypot(gx, gy)
    angle = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * BINS).astype(int), BINS - 1)
    cell = SIZE // CELLS
    hist = np.zeros((CELLS, CELLS, BINS))
    for i in range(CELLS):
        for j in range(CELLS):
            window = (slice(i * cell, (i + 1) * cell), slice(j * cell, (j + 1) * cell))
            hist[i, j] = np.bincount(angle[window].ravel(), magnitude[window].ravel(), minlength=BINS)
    thumb = np.asarray(Image.fromarray(pixels.astype(np.float32)).resize((8, 8), Image.BILINEAR))
    return [_unit(hist), _unit(thumb)]


def image_features(data: bytes) -> np.ndarray:
    image = to_rgb_or_gray(Image.open(io.BytesIO(data))).convert("RGB")
    grey = image.convert("L")
    pixels = np.asarray(grey, dtype=np.float32)
    # The background is the commonest tone of the border; what differs from it is the drawing (or the glyph's ink).
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = float(np.median(border))
    ink = np.abs(pixels - background) > max(12.0, 0.25 * float(pixels.std()))
    ys, xs = np.nonzero(ink)
    box = (0, 0, image.width, image.height)
    if len(ys) > 3:  # crop to the drawing, squared, so that its shape counts, not its size or place
        side = max(ys.max() - ys.min(), xs.max() - xs.min()) + 2
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        box = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    fill = int(round(background))
    grey_crop = _crop(grey, box, fill)
    mask = _crop(Image.fromarray((ink * 255).astype(np.uint8)), box, 0)
    colour = _crop(image, box, (fill,) * 3).resize((4, 4), Image.BOX)
    size = (SIZE, SIZE)
    return np.concatenate(
        [
            *_shape_blocks(np.asarray(grey_crop.resize(size, Image.BILINEAR), dtype=np.float32)),
            *_shape_blocks(np.asarray(mask.resize(size, Image.BILINEAR), dtype=np.float32)),
            COLOUR_WEIGHT * np.asarray(colour, dtype=np.float32).ravel() / 255.0,
        ]
    )


def _crop(image: Image.Image, box: tuple, fill) -> Image.Image:
    """`image` cropped to `box`, what lies outside the image filled with the background."""
    canvas = Image.new(image.mode, (box[2] - box[0], box[3] - box[1]), fill)
    canvas.paste(image, (-box[0], -box[1]))
    return canvas


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0))


def vote_by_images(train: dict, queries: dict) -> dict:
    """{query key: {concept: share of its images voting for it}}.

    `train` is {(source, label): (concept, images)} for accepted labels, `queries`
    {(source, label): images} for uncertain ones. Shares need not sum to 1: the rest
    of a label's images abstained.
    """
    feats, owners, sources = [], [], []
    for (source, _), (concept, images) in train.items():
        for data in images:
            feats.append(image_features(data))
            owners.append(concept)
            sources.append(source)
    if len(set(owners)) < 2 or not queries:
        return {}
    feats, owners, sources = np.stack(feats), np.asarray(owners), np.asarray(sources)
    result = {}
    for key, images in queries.items():
        others = sources != key[0]
        concepts = sorted(set(owners[others].tolist()))
        if not images or len(concepts) < 2:
            continue
        query = np.stack([image_features(data) for data in images])
        dist = _distances(query, feats[others])
        nearest = np.stack([dist[:, owners[others] == c].min(axis=1) for c in concepts], axis=1)
        order = np.argsort(nearest, axis=1)
        rows = np.arange(len(images))
        best, second = nearest[rows, order[:, 0]], nearest[rows, order[:, 1]]
        votes: dict[str, float] = {}
        for row in np.nonzero(second >= (1 + GAP) * best)[0]:
            concept = concepts[order[row, 0]]
            votes[concept] = votes.get(concept, 0.0) + 1.0 / len(images)
        result[key] = {c: round(v, 4) for c, v in votes.items()}
    logger.info(
        "image votes: %d of %d uncertain labels drew a vote", sum(bool(v) for v in result.values()), len(queries)
    )
    return result
