"""Image evidence for alignment: the images of a label whose text is uncertain vote for a concept.

`vote_by_images` compares the images of each uncertain label with the images of
labels already accepted, one accepted source at a time: every image votes for the
concept of its nearest neighbours in that source (k = 5, majority), unless it lies
farther from them than that concept's own images lie from one another (twice
their 95th-percentile nearest-neighbour distance), in which case it abstains. So
a label whose concept no accepted source shows gets no strong vote for a wrong one.

Sources are weighed by how well they explain the uncertain source as a whole: the
best one-to-one assignment of its labels onto the accepted source's concepts (a
source written in one script resembles the source written in a kindred script far
more than the others, though all show the same concepts). The share of a label's images voting for each
concept, over the sources so weighed, is its image evidence; alignment.py combines
it with the text evidence.

Features are deliberately plain, so that voting costs seconds on a CPU: gradient
orientation histograms of the grey image cropped to its ink (shape, whatever the
font size), a small grey thumbnail, and a 4 × 4 colour thumbnail, each block
weighted by how well it separates the accepted source's own concepts. The hook
`unify(image_votes=…)` lets a stronger model take this one's place.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from ..images import to_rgb_or_gray

logger = logging.getLogger(__name__)

K = 5
SLACK = 2.0  # times a concept's 95th-percentile nearest-neighbour distance among its own images
SOURCE_TEMPERATURE = 0.02  # how sharply the best-fitting accepted source outweighs the others
SIZE, CELLS, BINS = 32, 4, 8


def image_features(data: bytes) -> np.ndarray:
    image = to_rgb_or_gray(Image.open(io.BytesIO(data))).convert("RGB")
    colour = np.asarray(image.resize((4, 4), Image.BILINEAR), dtype=np.float32).ravel() / 255.0
    grey = image.convert("L")
    pixels = np.asarray(grey, dtype=np.float32)
    ink = np.abs(pixels - np.median(pixels)) > 0.5 * pixels.std() + 1e-3
    ys, xs = np.nonzero(ink)
    if len(ys) > 3:  # crop to the ink, squared, so a glyph's shape counts, not its size or place
        side = max(ys.max() - ys.min(), xs.max() - xs.min()) + 2
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        grey = grey.crop(tuple(int(round(v)) for v in box))
    pixels = np.asarray(grey.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
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
    thumb = np.asarray(Image.fromarray(pixels).resize((8, 8), Image.BILINEAR), dtype=np.float32).ravel()

    def unit(v):
        v = v.ravel()
        return v / (np.linalg.norm(v) + 1e-6)

    return np.concatenate([unit(hist), unit(thumb), colour])


# The feature blocks: orientation histograms, grey thumbnail, colour thumbnail.
BLOCKS = (slice(0, CELLS * CELLS * BINS), slice(CELLS * CELLS * BINS, CELLS * CELLS * BINS + 64), slice(-48, None))


def block_scales(feats: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """A weight per feature: each block scaled by how well it separates the concepts (between / within spread).

    Colour tells tinted textures apart and says nothing about a glyph's shape; orientation
    histograms are the reverse: the accepted images show which blocks to trust.
    """
    scales = np.ones(feats.shape[1])
    concepts = np.unique(owners)
    for block in BLOCKS:
        part = feats[:, block]
        centres = np.stack([part[owners == c].mean(axis=0) for c in concepts])
        within = np.mean([((part[owners == c] - centres[i]) ** 2).sum(axis=1).mean() for i, c in enumerate(concepts)])
        between = ((centres - centres.mean(axis=0)) ** 2).sum(axis=1).mean()
        scales[block] = np.sqrt(between / max(within, 1e-9) / max(within, 1e-9))
    return scales


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0))


def vote_by_images(train: dict, queries: dict) -> dict:
    """{query key: {concept: share of its images voting for it}}.

    `train` is {(source, label): (concept, images)} for accepted labels, `queries`
    {(source, label): images} for uncertain ones. Shares need not sum to 1: the rest
    of a label's images abstained.
    """
    from scipy.optimize import linear_sum_assignment

    # As many images of every accepted label, so that no source wins by its size alone.
    sizes = [len(images) for _, images in train.values() if images]
    cap = max(3, int(np.median(sizes))) if sizes else 0
    sources: dict[str, tuple[list, list]] = {}
    for (source, _), (concept, images) in train.items():
        feats, owners = sources.setdefault(source, ([], []))
        for data in images[:cap]:
            feats.append(image_features(data))
            owners.append(concept)
    if len({c for _, owners in sources.values() for c in owners}) < 2 or not queries:
        return {}
    references = []
    for source, (feats, owners) in sources.items():
        feats, owners = np.stack(feats), np.asarray(owners)
        concepts = sorted(set(owners.tolist()))
        scales = block_scales(feats, owners) if len(concepts) > 1 else np.ones(feats.shape[1])
        feats = feats * scales
        near = _distances(feats, feats)
        np.fill_diagonal(near, np.inf)
        radius = {}
        for concept in concepts:
            mine = owners == concept
            within = near[np.ix_(mine, mine)].min(axis=1) if mine.sum() > 1 else near[mine].min(axis=1)
            radius[concept] = float(np.percentile(within, 95)) * SLACK
        references.append((source, feats, owners, concepts, radius, scales))

    result = {}
    by_source: dict[str, list] = {}
    for key in queries:
        by_source.setdefault(key[0], []).append(key)
    for query_source, keys in by_source.items():
        keys = [key for key in keys if queries[key]]
        features = {key: np.stack([image_features(data) for data in queries[key]]) for key in keys}
        shares, fits = [], []
        for source, feats, owners, concepts, radius, scales in references:
            if source == query_source:
                continue
            matrix = np.zeros((len(keys), len(concepts)))
            for row, key in enumerate(keys):
                dist = _distances(features[key] * scales, feats)
                for image_row, neighbours in enumerate(np.argsort(dist, axis=1)[:, :K]):
                    values, counts = np.unique(owners[neighbours], return_counts=True)
                    best = values[counts.argmax()]
                    closest = dist[image_row, neighbours[owners[neighbours] == best]].min()
                    if counts.max() > K // 2 and closest <= radius[best]:
                        matrix[row, concepts.index(best)] += 1.0 / len(features[key])
            rows, cols = linear_sum_assignment(matrix, maximize=True)
            fits.append(matrix[rows, cols].sum() / max(len(keys), 1))
            shares.append((concepts, matrix))
        if not fits:
            continue
        weights = np.exp((np.asarray(fits) - max(fits)) / SOURCE_TEMPERATURE)
        logger.info(
            "image votes for source %s: best matched by %s",
            query_source,
            ", ".join(
                f"{references_name} {w:.2f}"
                for references_name, w in sorted(
                    zip([r[0] for r in references if r[0] != query_source], weights), key=lambda x: -x[1]
                )[:3]
            ),
        )
        for row, key in enumerate(keys):
            total: dict[str, float] = {}
            for weight, (concepts, matrix) in zip(weights, shares):
                for j, concept in enumerate(concepts):
                    total[concept] = total.get(concept, 0.0) + weight * matrix[row, j]
            result[key] = {c: round(v / weights.sum(), 4) for c, v in total.items() if v > 0}
    return result
