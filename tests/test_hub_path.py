"""Checkpoints laid out as the Hub's, fine-tuned at another input size, read back by `pipeline()`."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from hub_mirrors import bin_only, convnext_tiny_224, vit_in21k
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

from polyglot_vision.cli import main
from polyglot_vision.errors import UserError
from polyglot_vision.labels import LabelSpace
from polyglot_vision.modeling import ModelArguments, build_image_processor, build_model, check_checkpoint
from polyglot_vision.serving.predictor import Predictor

from conftest import LABELS, REPO, fails, tiny_recipe, write_yaml

MIRRORS = {"vit": vit_in21k, "convnext": convnext_tiny_224}
EXAMPLES = sorted((REPO / "space" / "examples").glob("*.png"))[:6]


@pytest.fixture(scope="session")
def hub_mirrors(tmp_path_factory) -> dict:
    """Hub-layout checkpoints, each in its own folder named as its repository."""
    root = tmp_path_factory.mktemp("hub")
    mirrors = {kind: make(root / make.__name__) for kind, make in MIRRORS.items()}
    mirrors["vit-bin"] = bin_only(mirrors["vit"], root / "vit_bin_only")
    return mirrors


def hub_recipe(polydigits_dir, tmp_path, checkpoint, **overrides):
    recipe = tiny_recipe(
        polydigits_dir,
        tmp_path / "model",
        model_name_or_path=str(checkpoint),
        label_granularity="concept",
        max_steps=2,
        **overrides,
    )
    del recipe["model_config"]
    recipe["sources"] = recipe["sources"][1:5]  # four scripts are enough to train and to read back
    return write_yaml(tmp_path / "recipe.yaml", recipe)


def test_the_mirrors_hold_the_files_and_sizes_of_their_hub_repositories(hub_mirrors):
    assert sorted(p.name for p in hub_mirrors["vit"].iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    assert sorted(p.name for p in hub_mirrors["convnext"].iterdir()) == [
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
    ]
    vit = json.loads((hub_mirrors["vit"] / "config.json").read_text())
    assert (vit["image_size"], vit["patch_size"], vit["architectures"]) == (224, 16, ["ViTModel"])
    convnext = AutoImageProcessor.from_pretrained(hub_mirrors["convnext"], backend="pil")
    assert (convnext.size["shortest_edge"], convnext.crop_pct) == (224, 0.875)


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_a_hub_layout_checkpoint_trained_at_32_px_classifies_through_pipeline_as_the_predictor_does(
    kind, hub_mirrors, polydigits_dir, tmp_path, capsys
):
    recipe = hub_recipe(polydigits_dir, tmp_path, hub_mirrors[kind])
    assert main(["train", str(recipe), "--image_size", "32"]) == 0, capsys.readouterr().err[-2000:]
    exported = tmp_path / "model"
    assert not (exported / "pytorch_model.bin").exists() and (exported / "model.safetensors").is_file()

    processor = AutoImageProcessor.from_pretrained(exported, backend="pil")
    out = processor(Image.open(EXAMPLES[0]).convert("RGB"), return_tensors="pt")["pixel_values"]
    assert tuple(out.shape[-2:]) == (32, 32)
    if kind == "vit":  # one position embedding per 16-px patch of a 32-px image, plus the class token's
        config = json.loads((exported / "config.json").read_text())
        assert config["image_size"] == 32
        weights = load_file(exported / "model.safetensors")
        assert weights["vit.embeddings.position_embeddings"].shape[1] == (32 // 16) ** 2 + 1
    else:  # the checkpoint's crop ratio is kept: resize to 32 / 0.875, then the centre 32 px
        assert (processor.size["shortest_edge"], processor.crop_pct) == (32, 0.875)

    classify = pipeline("image-classification", model=str(exported))
    predictor = Predictor.from_pretrained(exported)
    images = [Image.open(path).convert("RGB") for path in EXAMPLES]
    for answers, ranked in zip(classify(images, top_k=1), predictor.top_k(images, k=1), strict=True):
        assert answers[0]["label"] == ranked[0].concept
        assert answers[0]["score"] == pytest.approx(ranked[0].score, abs=1e-4)


def test_a_vit_resized_at_load_keeps_its_position_embeddings_resampled_not_redrawn(hub_mirrors):
    labels = LabelSpace.from_yaml(LABELS / "digits.yaml")
    args = ModelArguments(model_name_or_path=str(hub_mirrors["vit"]), image_size=64)
    model = build_model(args, labels, granularity="concept")
    original = AutoModelForImageClassification.from_pretrained(hub_mirrors["vit"])
    expected = original.vit.embeddings.interpolate_pos_encoding(torch.zeros(1, 17, 32), 64, 64)
    assert model.config.image_size == 64
    assert torch.allclose(model.vit.embeddings.position_embeddings, expected)
    model.eval()
    with torch.no_grad():  # a plain forward at 64 px, no flag
        assert model(pixel_values=torch.zeros(2, 3, 64, 64)).logits.shape == (2, 10)


def test_a_bin_only_repository_loads_the_same_weights_as_its_safetensors_twin(hub_mirrors):
    labels = LabelSpace.from_yaml(LABELS / "digits.yaml")
    models = [
        build_model(ModelArguments(model_name_or_path=str(hub_mirrors[k])), labels, granularity="concept")
        for k in ("vit", "vit-bin")
    ]
    body = [{k: v for k, v in m.state_dict().items() if not k.startswith("classifier")} for m in models]
    assert body[0].keys() == body[1].keys()
    assert all(torch.equal(body[0][k], body[1][k]) for k in body[0])


@pytest.mark.parametrize(
    "kind, size, culprit",
    [("vit", 8, "smaller than one of its 16-px patches"), ("convnext", 16, "image_size 16")],
)
def test_a_size_the_checkpoint_cannot_take_is_one_line_before_any_data_is_read(
    kind, size, culprit, hub_mirrors, polydigits_dir, tmp_path, capsys
):
    recipe = hub_recipe(polydigits_dir, tmp_path, hub_mirrors[kind])
    data = point_first_source_nowhere(recipe)
    line = fails(capsys, ["train", recipe, "--image_size", str(size)], culprit, str(hub_mirrors[kind]))
    assert data not in line  # the missing source was never read: the model was refused first
    assert not (tmp_path / "model").exists()


def point_first_source_nowhere(recipe_path) -> str:
    """Point the recipe's first source at a folder that does not exist; returns that path."""
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    missing = str(recipe_path.parent / "no-such-source")
    recipe["sources"][0]["path"] = missing
    write_yaml(recipe_path, recipe)
    return missing


SMALL_ENCODER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
OTHER_CLASSIFIERS = {
    # DeiT as facebook/deit-tiny-patch16-224: a processor resizing to 256 and cropping the centre 224
    "deit": (dict(SMALL_ENCODER, architectures=["DeiTForImageClassification"]), "DeiTImageProcessorPil"),
    "swin": (dict(embed_dim=8, depths=[1, 1], num_heads=[1, 1]), "ViTImageProcessorPil"),
    "resnet": (dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]), "ConvNextImageProcessorPil"),
    "dinov2": (dict(SMALL_ENCODER, patch_size=14), "ViTImageProcessorPil"),
}


def save_classifier(folder, model_type: str, settings: dict, processor_class: str):
    import transformers

    config = AutoConfig.for_model(model_type, image_size=224, **settings)
    torch.manual_seed(0)
    AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    getattr(transformers, processor_class)().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_type", sorted(OTHER_CLASSIFIERS))
def test_other_image_classifiers_take_another_size_with_a_square_input_and_a_plain_forward(model_type, tmp_path):
    settings, processor_class = OTHER_CLASSIFIERS[model_type]
    folder = save_classifier(tmp_path / model_type, model_type, settings, processor_class)
    args = ModelArguments(model_name_or_path=str(folder), image_size=64)
    check_checkpoint(args)
    processor = build_image_processor(args)
    pixels = processor(Image.open(EXAMPLES[0]).convert("RGB"), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (64, 64)
    model = build_model(args, LabelSpace.from_yaml(LABELS / "digits.yaml"), granularity="concept").eval()
    with torch.no_grad():
        assert model(pixel_values=pixels).logits.shape == (1, 10)


def test_a_crop_keeps_its_margin_at_the_new_size(tmp_path):
    settings, processor_class = OTHER_CLASSIFIERS["deit"]
    folder = save_classifier(tmp_path / "deit", "deit", settings, processor_class)
    processor = build_image_processor(ModelArguments(model_name_or_path=str(folder), image_size=64))
    assert dict(processor.crop_size) == {"height": 64, "width": 64}
    assert dict(processor.size) == {"height": round(64 * 256 / 224), "width": round(64 * 256 / 224)}


def test_a_model_whose_weights_are_bound_to_its_size_is_refused_naming_the_tensor(tmp_path):
    folder = save_classifier(
        tmp_path / "beit", "beit", dict(SMALL_ENCODER, use_relative_position_bias=True), "BeitImageProcessorPil"
    )
    with pytest.raises(UserError, match=r"relative_position_bias_table` is fixed to its 224-px inputs") as err:
        check_checkpoint(ModelArguments(model_name_or_path=str(folder), image_size=64))
    assert str(folder) in str(err.value) and "\n" not in str(err.value)
