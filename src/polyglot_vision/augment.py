"""Batch-level tensor augmentation with kornia, on the model's device.

The cache holds uint8 pixels already resized by the image processor; each batch
is turned to floats, augmented as one tensor (training only) and normalised
with the processor's mean and std, so training sees exactly what `pipeline()`
sees at inference, plus augmentation. A policy is a string of named ops joined
by `+` (`affine+elastic+blur`), so a recipe states it in one value. There is
no horizontal flip: numerals are not symmetric.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from .errors import UserError


def _ops() -> dict[str, callable]:
    # The background is light and varies in tint: pad with the border, not with black.
    return {
        "affine": lambda: K.RandomAffine(
            degrees=10, translate=(0.08, 0.08), scale=(0.85, 1.1), shear=8, padding_mode="border", p=0.8
        ),
        "elastic": lambda: K.RandomElasticTransform(
            kernel_size=(15, 15), sigma=(4.0, 4.0), alpha=(0.6, 0.6), padding_mode="border", p=0.3
        ),
        "blur": lambda: K.RandomGaussianBlur((3, 3), (0.1, 1.0), p=0.2),
        "jitter": lambda: K.ColorJitter(brightness=0.15, contrast=0.3, p=0.5),
        "erase": lambda: K.RandomErasing(scale=(0.01, 0.06), ratio=(0.3, 3.3), value=1.0, p=0.2),
    }


POLICY_OPS = tuple(_ops())


def build_augmentation(policy: str) -> nn.Module:
    """`"none"` or op names joined by `+` -> a kornia pipeline."""
    policy = (policy or "none").strip()
    if policy == "none":
        return nn.Identity()
    ops = _ops()
    names = [name.strip() for name in policy.split("+")]
    unknown = [n for n in names if n not in ops]
    if unknown:
        raise UserError(f"recipe: augmentation op(s) {', '.join(unknown)} unknown; choose from {', '.join(ops)}")
    return K.AugmentationSequential(*(ops[n]() for n in names), data_keys=["input"])


class BatchPreprocessor(nn.Module):
    """uint8 (B, C, H, W) -> augmented (when training) and normalised float tensor."""

    def __init__(self, image_mean, image_std, policy: str = "none"):
        super().__init__()
        self.register_buffer("mean", torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.augment = build_augmentation(policy)

    @classmethod
    def from_processor(cls, processor, policy: str = "none") -> "BatchPreprocessor":
        return cls(processor.image_mean, processor.image_std, policy)

    def forward(self, pixels: torch.Tensor, augment: bool = False) -> torch.Tensor:
        x = pixels.float().div_(255.0)
        if augment:
            x = self.augment(x).clamp_(0.0, 1.0)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)
