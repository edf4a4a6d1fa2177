"""Tiny random checkpoints saved in exactly the layouts of Hub repositories, for offline tests.

Each folder holds the files its Hub model holds (config.json with the same keys and the
same image and patch sizes, preprocessor_config.json as the repository writes it, the
weights in the same format), with hidden sizes cut down so that a test trains it in
seconds. A local folder path stands in for the Hub id: `from_pretrained(folder)` takes the
same code path as `from_pretrained("google/vit-base-patch16-224-in21k")` reading its cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import ConvNextConfig, ConvNextForImageClassification, ViTConfig, ViTModel


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _state(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}


def vit_in21k(folder: Path) -> Path:
    """Like google/vit-base-patch16-224-in21k: a headless `ViTModel` at 224 px, patch 16, model.safetensors."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=224,
        patch_size=16,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        qkv_bias=True,
        architectures=["ViTModel"],
    )
    ViTModel(config).save_pretrained(folder, safe_serialization=True)
    # The repository's processor file predates `image_processor_type`: an int size, the feature extractor's name.
    _write_json(
        folder / "preprocessor_config.json",
        {
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "ViTFeatureExtractor",
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "resample": 2,
            "size": 224,
        },
    )
    return folder


def convnext_tiny_224(folder: Path) -> Path:
    """Like facebook/convnext-tiny-224: an ImageNet classifier whose only weights are pytorch_model.bin.

    Its processor resizes the shortest edge to 224 / crop_pct and crops the centre 224 px.
    """
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    config = ConvNextConfig(
        num_channels=3,
        patch_size=4,
        num_stages=4,
        hidden_sizes=[8, 16, 32, 64],
        depths=[1, 1, 1, 1],
        image_size=224,
        num_labels=1000,
        id2label={i: f"n{i:08d}" for i in range(1000)},
        architectures=["ConvNextForImageClassification"],
    )
    model = ConvNextForImageClassification(config)
    config.save_pretrained(folder)
    torch.save(_state(model), folder / "pytorch_model.bin")  # plain tensors: torch's weights_only loader takes it
    _write_json(
        folder / "preprocessor_config.json",
        {
            "crop_pct": 0.875,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "ConvNextFeatureExtractor",
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "resample": 3,
            "size": 224,
        },
    )
    return folder


def bin_only(source: Path, folder: Path) -> Path:
    """`source` with model.safetensors turned into pytorch_model.bin (plain tensors), as older repositories ship."""
    folder.mkdir(parents=True)
    for path in source.iterdir():
        if path.name == "model.safetensors":
            torch.save(load_file(path), folder / "pytorch_model.bin")
        else:
            (folder / path.name).write_bytes(path.read_bytes())
    return folder


def parquet_dataset(folder: Path, labels: list, class_names: list[str] | None = None) -> Path:
    """Like a Hub dataset repository in parquet: `data/train-00000-of-00001.parquet`, written by `datasets`
    as `push_to_hub` writes its shards, with an `image` column (PNG bytes) and a `label` column in `labels`' order.

    Labels are integers or strings as given, or a ClassLabel of `class_names` (whose ids `labels` then
    holds). Each image is a distinct 4 x 4 grey PNG, so that no two rows are copies of each other.
    """
    import io

    import numpy as np
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as ImageFeature
    from PIL import Image

    def png(i: int) -> bytes:
        pixels = np.frombuffer(i.to_bytes(4, "little") * 4, dtype=np.uint8).reshape(4, 4)
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
        return buffer.getvalue()

    if class_names is not None:
        label_feature = ClassLabel(names=class_names)
    else:
        label_feature = Value("int64") if isinstance(labels[0], int) else Value("string")
    rows = Dataset.from_dict(
        {"image": [{"bytes": png(i), "path": None} for i in range(len(labels))], "label": labels},
        features=Features({"image": ImageFeature(), "label": label_feature}),
    )
    (folder / "data").mkdir(parents=True)
    rows.to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    return folder
