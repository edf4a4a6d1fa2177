"""Samplers that balance training batches by language or concept (p ∝ n^τ), scaled by each source's weight."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset


class BalancedSampler(torch.utils.data.Sampler[int]):
    """Draws `len(groups)` indices with replacement so that a group of n images has probability ∝ n^τ.

    Each image of group g has weight n_g^τ / n_g; τ = 1 keeps the data's own mix, τ = 0 gives every
    group (language or concept) the same share of the batches. `scale` multiplies each image's
    weight (a source's `weight`). The draw is seeded by `seed + epoch` (`set_epoch`, which the
    Trainer calls), so every process of a distributed run draws the same order, and a run resumed
    from a checkpoint draws the same order as an unbroken one.
    """

    def __init__(self, groups, temperature: float = 0.5, seed: int = 0, scale=None):
        self.groups = np.asarray(groups)
        weights = balanced_weights(self.groups, temperature)
        if scale is not None:
            weights = weights * np.asarray(scale, dtype=np.float64)
        self.weights = torch.as_tensor(weights / weights.sum(), dtype=torch.double)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.multinomial(self.weights, len(self.groups), replacement=True, generator=generator).tolist()


def balanced_weights(groups, temperature: float) -> np.ndarray:
    """Per-example weights n_g^(τ-1), normalised to sum to 1 (group g's share ∝ n_g^τ)."""
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    weights = counts.astype(np.float64) ** (temperature - 1.0)
    weights = weights[inverse]
    return weights / weights.sum()


def build_sampler(
    dataset: Dataset, kind: str, temperature: float, seed: int, source_weights: dict[str, float] | None = None
) -> BalancedSampler | None:
    """A `BalancedSampler` over the train split, or None for the Trainer's uniform shuffle.

    `kind` balances by `language` or `class` (concept); `none` keeps the data's own mix. Sources
    with a `weight` other than 1 scale the probability of each of their images by it.
    """
    plain = dataset.with_format(None)
    scale = None
    if source_weights and any(w != 1 for w in source_weights.values()):
        scale = [source_weights.get(name, 1.0) for name in plain["source"]]
    if kind == "none":
        return (
            None if scale is None else BalancedSampler(np.zeros(len(plain)), temperature=1.0, seed=seed, scale=scale)
        )
    column = {"language": "language", "class": "label"}[kind]
    return BalancedSampler(plain[column], temperature=temperature, seed=seed, scale=scale)


def group_probabilities(sizes: list[int], temperature: float) -> np.ndarray:
    """Share of draws of each group, ∝ n^τ (the balanced sampler's, per group)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if not len(sizes):
        return sizes
    weights = sizes**temperature
    return weights / weights.sum()
