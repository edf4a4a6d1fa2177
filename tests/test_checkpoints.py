"""The path every user with the Hub takes, without the Hub: fine-tune a local checkpoint through a recipe."""

from __future__ import annotations

import subprocess

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    ConvNextImageProcessorPil,
    ViTImageProcessorPil,
    pipeline,
)

from conftest import CLI, REPO, tiny_recipe, write_yaml

TINY = {
    "vit": dict(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    ),
    "convnext": dict(image_size=32, patch_size=4, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1]),
}


def save_checkpoint(model_type: str, folder):
    """A random checkpoint with an ImageNet-style 1000-class head, saved as one on the Hub is."""
    config = AutoConfig.for_model(
        model_type, num_labels=1000, id2label={i: f"class {i}" for i in range(1000)}, **TINY[model_type]
    )
    torch.manual_seed(0)
    AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    if model_type == "vit":
        processor = ViTImageProcessorPil(size={"height": 32, "width": 32})
    else:
        processor = ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=1.0)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_type", ["vit", "convnext"])
def test_a_local_checkpoint_is_fine_tuned_with_a_new_head_for_the_concepts(model_type, polydigits_dir, tmp_path):
    checkpoint = save_checkpoint(model_type, tmp_path / "checkpoint")
    recipe = tiny_recipe(
        polydigits_dir, tmp_path / "model", model_name_or_path=str(checkpoint), label_granularity="concept"
    )
    del recipe["model_config"]
    path = write_yaml(tmp_path / "recipe.yaml", recipe)
    run = subprocess.run([*CLI, "train", str(path)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]

    model = AutoModelForImageClassification.from_pretrained(tmp_path / "model")
    concepts = [str(i) for i in range(10)]
    assert [model.config.id2label[i] for i in range(10)] == concepts and model.config.num_labels == 10
    assert model.config.model_type == model_type
    assert model.classifier.weight.shape[0] == 10  # a new head, not the checkpoint's 1000 classes
    assert model.config.label_display_names["fr"]["7"] == "sept"
    encoder = next(name for name, _ in model.named_parameters() if "classifier" not in name)
    original = AutoModelForImageClassification.from_pretrained(checkpoint)
    assert torch.allclose(
        dict(original.named_parameters())[encoder].float(), dict(model.named_parameters())[encoder].float(), atol=0.5
    )  # fine-tuned, not re-drawn

    classify = pipeline("image-classification", model=str(tmp_path / "model"))
    answers = classify(str(REPO / "space" / "examples" / "latn-7.png"), top_k=3)
    assert len(answers) == 3 and {a["label"] for a in answers} <= set(concepts)
