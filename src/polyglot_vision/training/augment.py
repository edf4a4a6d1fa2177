"""Batch-level tensor augmentation with kornia, on the model's device.

The cache holds uint8 pixels already resized by the image processor; each batch
is turned to floats, augmented as one tensor (training only) and normalised
with the processor's mean and std, so training sees exactly what `pipeline()`
sees at inference, plus augmentation. A policy is a string of named ops joined
by `+` (`crop+affine+mixup`), so a recipe states it in one value. Horizontal
flip is opt-in (`flip`): writing, and most images that bear it, are not
symmetric; so is `invert` (light on dark). `mixup` and `cutmix` also mix the labels, so a batch they touch
has soft targets (rows of class probabilities) instead of class ids.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from ..data import PixelNormalizer, processor_input_size
from ..errors import UserError


class RandomBatchAffine(nn.Module):
    """Random rotation, shift, scale and shear of each image: one sampling grid + `grid_sample` per batch.

    The same family of transforms as kornia's `RandomAffine` (border padding,
    bilinear), without its per-call bookkeeping, which outweighs the sampling
    itself on small images. An image left alone (probability 1 - p) gets the
    identity, which bilinear sampling reproduces (to float rounding).
    """

    def __init__(self, degrees: float, translate: float, scale: tuple[float, float], shear: float, p: float):
        super().__init__()
        self.degrees, self.translate, self.scale, self.shear, self.p = degrees, translate, scale, shear, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        # One draw for the whole batch: angle, two shears, zoom, two shifts, and whether to move.
        u = torch.rand(n, 7)
        angle = torch.deg2rad((2 * u[:, 0] - 1) * self.degrees)
        shear_x, shear_y = torch.tan(torch.deg2rad((2 * u[:, 1:3] - 1) * self.shear)).unbind(-1)
        zoom = self.scale[0] + u[:, 3] * (self.scale[1] - self.scale[0])
        shift = (2 * u[:, 4:6] - 1) * (2 * self.translate)  # up to `translate` of the image, in [-1, 1] units
        # The sampling grid maps output to input coordinates: the inverse of zoom · rotate · shear,
        # [[a, b], [c, d]], whose inverse is [[d, -b], [-c, a]] / (zoom · (1 - shear_x · shear_y)).
        cos, sin = torch.cos(angle), torch.sin(angle)
        a, b = cos - sin * shear_y, cos * shear_x - sin
        c, d = sin + cos * shear_y, sin * shear_x + cos
        scale = 1.0 / (zoom * (1.0 - shear_x * shear_y))
        inverse = torch.stack([d, -b, -c, a], -1).mul_(scale.unsqueeze(-1)).view(n, 2, 2)
        theta = torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], -1)
        theta = torch.where((u[:, 6] >= self.p).view(n, 1, 1), torch.eye(2, 3), theta)
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = affine_grid(theta, *x.shape[-2:])
        return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`torch.nn.functional.affine_grid(theta, (n, ·, height, width), align_corners=False)`, cheaper.

    An affine map is separable: a grid coordinate is a row term plus a column
    term, so each one is a single broadcast add into the (n, H, W, 2) grid
    instead of a (H·W × 3) by (3 × 2) product per image.
    """
    n = theta.shape[0]
    # Pixel centres in [-1, 1], as `affine_grid` places them without align_corners.
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    grid = torch.empty(n, height, width, 2, device=theta.device, dtype=theta.dtype)
    for k in range(2):  # output x, then output y: theta[k] · (x, y, 1)
        across = theta[:, k, 0, None] * xs  # (n, W)
        down = theta[:, k, 1, None] * ys + theta[:, k, 2, None]  # (n, H)
        torch.add(across.unsqueeze(1), down.unsqueeze(2), out=grid[..., k])
    return grid


def _ops(size: tuple[int, int]) -> dict[str, callable]:
    # The background is light and varies in tint: pad with the border, not with black.
    return {
        # Mild next to ImageNet's (0.08, 1): a character cropped to a tenth is another one or none.
        "crop": lambda: K.RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(0.8, 1.25), p=0.5),
        "affine": lambda: RandomBatchAffine(degrees=10, translate=0.08, scale=(0.85, 1.1), shear=8, p=0.8),
        "elastic": lambda: K.RandomElasticTransform(
            kernel_size=(15, 15), sigma=(4.0, 4.0), alpha=(0.6, 0.6), padding_mode="border", p=0.3
        ),
        "blur": lambda: K.RandomGaussianBlur((3, 3), (0.1, 1.0), p=0.2),
        "jitter": lambda: K.ColorJitter(brightness=0.15, contrast=0.3, p=0.5),
        # Drawings of one thing by different hands differ in palette: saturation and hue move too, and some
        # images lose their colour, so that shape must carry the answer.
        "color": lambda: K.ColorJitter(brightness=0.2, contrast=0.3, saturation=0.5, hue=0.1, p=0.8),
        "gray": lambda: K.RandomGrayscale(p=0.25),
        "erase": lambda: K.RandomErasing(scale=(0.01, 0.06), ratio=(0.3, 3.3), value=1.0, p=0.2),
        "flip": lambda: K.RandomHorizontalFlip(p=0.5),
        # Light writing on a dark ground (chalk, dark-mode screens) for data that is all dark on light.
        "invert": lambda: K.RandomInvert(max_val=torch.tensor(1.0), p=0.15),
    }


# Geometric ops with bilinear sampling and border padding, the flip, and the blur: each output
# pixel is a convex combination of input pixels of its channel.
CONVEX_OPS = ("crop", "affine", "elastic", "blur", "flip")
# Ops that mix pairs of images and their labels (applied after the per-image ops).
MIXING_OPS = ("mixup", "cutmix")
POLICY_OPS = (*_ops((1, 1)), *MIXING_OPS)
MIX_ALPHA = 0.2  # mixing weight ~ Beta(α, α), as in the mixup paper for ImageNet
CUTMIX_ALPHA = 1.0


def parse_policy(policy: str) -> list[str]:
    """`"none"` or op names joined by `+` -> the op names; an unknown one is a UserError."""
    policy = (policy or "none").strip()
    if policy == "none":
        return []
    names = [name.strip() for name in policy.split("+")]
    unknown = [n for n in names if n not in POLICY_OPS]
    if unknown:
        raise UserError(
            f"recipe: `augmentation` op(s) {', '.join(unknown)} unknown; choose from {', '.join(POLICY_OPS)}"
        )
    return names


def build_augmentation(policy: str, size: tuple[int, int] = (224, 224)) -> nn.Module:
    """The per-image ops of a policy -> one kornia pipeline (Identity when there are none)."""
    ops = _ops(size)
    names = [n for n in parse_policy(policy) if n in ops]
    if not names:
        return nn.Identity()
    return nn.Sequential(*(ops[n]() for n in names))


def mix_batch(x: torch.Tensor, labels: torch.Tensor, num_classes: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix of a batch with a shuffled copy of itself -> (images, soft targets).

    One weight λ per batch: mixup blends whole images, CutMix pastes a box of
    area 1 - λ from the partner image, and each target is λ·own + (1 - λ)·partner,
    with λ recomputed from the box actually pasted (clipped at the border).
    Random numbers come from torch's global generator, which the Trainer seeds
    and restores on resume.
    """
    targets = labels if labels.dim() == 2 else nn.functional.one_hot(labels, num_classes).to(x.dtype)
    partner = torch.randperm(x.shape[0], device=x.device)
    alpha = MIX_ALPHA if kind == "mixup" else CUTMIX_ALPHA
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    if kind == "mixup":
        x = lam * x + (1.0 - lam) * x[partner]
    else:
        height, width = x.shape[-2:]
        cut_h, cut_w = int(height * (1.0 - lam) ** 0.5), int(width * (1.0 - lam) ** 0.5)
        cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[partner][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
    return x, lam * targets + (1.0 - lam) * targets[partner]


class BatchPreprocessor(PixelNormalizer):
    """uint8 (B, C, H, W) -> augmented (when training) and normalised float tensor."""

    def __init__(self, image_mean, image_std, policy: str = "none", size: tuple[int, int] = (224, 224)):
        super().__init__(image_mean, image_std)
        self.augment = build_augmentation(policy, size)
        names = parse_policy(policy)
        self.mixing = [n for n in names if n in MIXING_OPS]
        # Ops whose every output pixel is a weighted average of input pixels of the same channel
        # commute with the per-channel normalisation and cannot leave the input's range: with only
        # those, batches are normalised first and need no clamp.
        self.normalise_first = all(n in CONVEX_OPS or n in MIXING_OPS for n in names)

    @classmethod
    def from_processor(cls, processor, policy: str = "none") -> "BatchPreprocessor":
        return cls(processor.image_mean, processor.image_std, policy, processor_input_size(processor))

    def mix(self, x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or CutMix (one of the policy's, drawn per batch) -> (images, soft targets)."""
        if not self.mixing:
            return x, labels
        kind = self.mixing[int(torch.randint(len(self.mixing), ()))] if len(self.mixing) > 1 else self.mixing[0]
        return mix_batch(x, labels, num_classes, kind)

    def forward(self, pixels: torch.Tensor, augment: bool = False) -> torch.Tensor:
        if not augment:
            return self.normalise(pixels)
        if self.normalise_first:
            return self.augment(self.normalise(pixels))
        x = self.augment(pixels.float().div_(255.0)).clamp_(0.0, 1.0)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)
