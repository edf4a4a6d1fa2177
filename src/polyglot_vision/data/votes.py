"""Image evidence for alignment: the images of a label whose text is uncertain vote for a concept.

`vote_by_images` trains a small convolutional network, for a few seconds on a CPU,
on the images of labels already aligned with confidence (in any source), then lets
every image of an uncertain label vote for the concept the network sees in it. An
image votes for the concept it most probably shows, but only when its features
lie about as close to the class it resembles most as that class's own training
images lie to their centre (twice their 95th percentile); other images abstain, so a label whose concept no
aligned source shows gets no strong vote for a wrong one. The share of a label's
images voting for each concept is its image evidence; alignment.py combines it
with the text evidence. The hook `unify(image_votes=…)` lets a stronger model
take this one's place.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import torch
from PIL import Image

from ..images import to_rgb_or_gray

logger = logging.getLogger(__name__)

SIZE = 24
SLACK = 2.0  # times the concept's 95th-percentile distance to its centre
EPOCHS = 20
MIN_STEPS = 150
MAX_PER_LABEL = 50


def image_tensor(data: bytes) -> np.ndarray:
    """4 × SIZE × SIZE: the grey image standardised (shape, whatever the ink and paper) and the colours."""
    image = to_rgb_or_gray(Image.open(io.BytesIO(data))).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    rgb = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    grey = rgb.mean(axis=0, keepdims=True)
    grey = (grey - grey.mean()) / (grey.std() + 1e-3)
    return np.concatenate([grey, rgb - 0.5])


class _Net(torch.nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        layers, width = [], 4
        for out in (16, 32, 64):
            layers += [torch.nn.Conv2d(width, out, 3, padding=1), torch.nn.BatchNorm2d(out), torch.nn.ReLU()]
            layers += [torch.nn.MaxPool2d(2)] if out != 64 else []
            width = out
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(width, classes)

    def forward(self, x):
        features = self.features(x)
        return self.head(features), features


def vote_by_images(train: dict[str, list[list[bytes]]], queries: dict, seed: int = 0) -> dict:
    """{query key: {concept: share of its images voting for it}} from `train` {concept: [images of one label]}.

    The network learns each aligned label as its own class (Arabic ١ and Devanagari १ are
    one concept but two shapes, and १ looks like a Latin 9); a class's vote goes to its concept.
    Shares need not sum to 1: the rest of a label's images abstained.
    """
    groups = [(c, images) for c, per_label in train.items() for images in per_label if images]
    concepts = [c for c, _ in groups]
    if len(set(concepts)) < 2 or not queries:
        return {}
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for index, (_, images) in enumerate(groups):
        chosen = rng.permutation(len(images))[:MAX_PER_LABEL]
        xs += [image_tensor(images[i]) for i in chosen]
        ys += [index] * len(chosen)
    x, y = torch.from_numpy(np.stack(xs)), torch.tensor(ys)
    torch.manual_seed(seed)
    net = _Net(len(concepts))
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    batches = max(1, (len(x) + 127) // 128)
    epochs = max(EPOCHS, -(-MIN_STEPS // batches))
    steps = epochs * batches
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(128):
            shift = [int(s) for s in rng.integers(-2, 3, size=2)]
            inputs = torch.roll(x[batch], shifts=shift, dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(inputs)[0], y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        train_accuracy = float((torch.cat([net(chunk)[0] for chunk in x.split(512)]).argmax(1) == y).float().mean())
        logger.info("image votes: a network of %d classes, training accuracy %.2f", len(groups), train_accuracy)
        features = torch.cat([net(chunk)[1] for chunk in x.split(512)]).numpy()
        centres = np.stack([features[(y == i).numpy()].mean(axis=0) for i in range(len(concepts))])
        radius = np.array(
            [
                np.percentile(np.linalg.norm(features[(y == i).numpy()] - centres[i], axis=1), 95) * SLACK
                for i in range(len(concepts))
            ]
        )
        owner = np.array([sorted(set(concepts)).index(c) for c in concepts])
        names = sorted(set(concepts))
        result = {}
        for key, images in queries.items():
            if not images:
                continue
            logits, feats = net(torch.from_numpy(np.stack([image_tensor(data) for data in images])))
            by_class = torch.softmax(logits, dim=1).numpy()
            probs = np.zeros((len(images), len(names)))
            np.add.at(probs.T, owner, by_class.T)
            best_class = by_class.argmax(axis=1)
            near = np.linalg.norm(feats.numpy() - centres[best_class], axis=1) <= radius[best_class]
            # An image votes for the concept it most probably shows, unless it lies far from that class.
            best = probs.argmax(axis=1)[near]
            votes = np.bincount(best, minlength=len(names)) / len(images)
            result[key] = {names[i]: round(float(v), 4) for i, v in enumerate(votes) if v}
    return result
