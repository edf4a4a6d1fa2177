"""Fine-tuning controls a recipe names: mixing augmentations, a frozen backbone, layer-wise learning
rates, early stopping, joint (concept, language) classes, and whole-batch reads from the pixel cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, tiny_recipe

DIGITS = REPO / "recipes" / "labels" / "digits.yaml"


def run_recipe(polydigits_dir, out_dir, **overrides):
    """Train a tiny recipe in this process, as `polyglot-vision train` does; returns (recipe, test metrics)."""
    from polyglot_vision.training import recipe_from_dict, train

    recipe = recipe_from_dict(tiny_recipe(polydigits_dir, out_dir, **overrides))
    return recipe, train(recipe)


def test_mixup_and_cutmix_give_soft_targets_that_match_the_pixels():
    from polyglot_vision.training.augment import BatchPreprocessor, mix_batch

    torch.manual_seed(0)
    # Image i is filled with the value i, so each output pixel tells whose image it came from.
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 16, 16).contiguous()
    labels = torch.arange(8)
    for kind in ("mixup", "cutmix"):
        mixed, targets = mix_batch(x, labels, num_classes=10, kind=kind)
        assert targets.shape == (8, 10)
        assert torch.allclose(targets.sum(dim=1), torch.ones(8))
        assert (targets.max(dim=1).values < 1).any(), "no image was mixed"
        # The expected pixel value under the soft target is the image's mean value.
        expected = targets[:, :8] @ torch.arange(8.0)
        assert torch.allclose(mixed.mean(dim=(1, 2, 3)), expected, atol=1e-5), kind
    preprocessor = BatchPreprocessor([0.5] * 3, [0.5] * 3, "affine+mixup+cutmix", (16, 16))
    assert preprocessor.mixing == ["mixup", "cutmix"]
    _, soft = preprocessor.mix(x, labels, 10)
    assert soft.shape == (8, 10)


def test_flip_is_opt_in_and_crop_keeps_the_input_size():
    from polyglot_vision.training.augment import BatchPreprocessor

    default = BatchPreprocessor([0.5] * 3, [0.5] * 3, "affine", (32, 32))
    assert "Flip" not in repr(default.augment)
    flip = BatchPreprocessor([0.5] * 3, [0.5] * 3, "crop+flip", (32, 32))
    assert "RandomHorizontalFlip" in repr(flip.augment)
    out = flip(torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8), augment=True)
    assert out.shape == (4, 3, 32, 32)


def test_batch_affine_moves_the_images_it_picks_and_leaves_the_others():
    from polyglot_vision.training.augment import RandomBatchAffine

    x = torch.rand(6, 3, 16, 16)
    assert torch.allclose(RandomBatchAffine(10, 0.08, (0.85, 1.1), 8, p=0.0)(x), x, atol=1e-5)
    moved = RandomBatchAffine(10, 0.08, (0.85, 1.1), 8, p=1.0)(x)
    assert moved.shape == x.shape and all(not torch.allclose(m, i) for m, i in zip(moved, x))


def test_batch_affine_zooms_in_the_direction_it_says():
    from polyglot_vision.training.augment import RandomBatchAffine

    x = torch.zeros(2, 1, 32, 32)
    x[..., 14:18, 14:18] = 1.0  # a 4 x 4 square in the middle
    zoomed = RandomBatchAffine(degrees=0, translate=0, scale=(2.0, 2.0), shear=0, p=1.0)(x)
    # Twice the size is four times the ink, still centred.
    assert torch.allclose(zoomed.sum(dim=(1, 2, 3)), torch.full((2,), 64.0), rtol=0.05)
    assert zoomed[..., 16, 16].min() == 1.0 and zoomed[..., 0, 0].max() == 0.0
    turned = RandomBatchAffine(degrees=45, translate=0, scale=(1.0, 1.0), shear=0, p=1.0)(x)
    assert torch.allclose(turned.sum(dim=(1, 2, 3)), torch.full((2,), 16.0), rtol=0.1)


def test_batch_affine_grid_is_torchs_affine_grid():
    from polyglot_vision.training.augment import affine_grid

    torch.manual_seed(0)
    theta = torch.eye(2, 3) + 0.3 * torch.randn(5, 2, 3)
    for height, width in ((32, 32), (7, 12)):
        expected = torch.nn.functional.affine_grid(theta, [5, 3, height, width], align_corners=False)
        assert torch.allclose(affine_grid(theta, height, width), expected, atol=1e-6)


def test_normalising_before_geometric_ops_gives_the_same_batch():
    from polyglot_vision.training.augment import BatchPreprocessor

    pixels = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    preprocessor = BatchPreprocessor(mean, std, "crop+affine", (32, 32))
    assert preprocessor.normalise_first and not BatchPreprocessor(mean, std, "affine+jitter").normalise_first
    reference = (pixels.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(preprocessor(pixels), reference, atol=1e-5)
    torch.manual_seed(3)
    fast = preprocessor(pixels, augment=True)
    torch.manual_seed(3)
    clamped = preprocessor.augment(pixels.float() / 255).clamp(0, 1)
    reference = (clamped - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(fast, reference, atol=1e-4)
    assert pixels.dtype == torch.uint8  # the cached batch is left as it was


def test_mixup_with_label_smoothing_trains_a_joint_model_with_layer_decay(polydigits_dir, tmp_path):
    from polyglot_vision.serving import Predictor

    recipe, metrics = run_recipe(
        polydigits_dir,
        tmp_path / "model",
        augmentation="crop+affine+mixup+cutmix",
        label_smoothing_factor=0.1,
        layer_decay=0.7,
        label_granularity="concept_language",
    )
    assert metrics["n"] > 0 and 0 <= metrics["accuracy"] <= 1
    config = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))
    # One class per (digit, language) pair in the data; answers and metrics stay at concept level.
    languages = sorted({s.language for s in recipe.data.sources})
    assert len(config["id2label"]) == 10 * len(languages)
    assert config["label_granularity"] == "concept_language"
    assert config["concepts"] == [str(d) for d in range(10)]
    assert config["joint_label_concept"]["7@th"] == "7" and config["joint_label_language"]["7@th"] == "th"
    assert metrics["labels"] == config["concepts"]  # test metrics at concept level
    assert len(metrics["confusion_matrix"]) == 10
    predictor = Predictor.from_pretrained(tmp_path / "model")
    from PIL import Image

    image = np.full((32, 32, 3), 255, dtype=np.uint8)
    (answer,) = predictor.top_k(Image.fromarray(image), k=10, language="fr")
    assert sorted(p.concept for p in answer) == config["concepts"]
    assert sum(p.score for p in answer) == pytest.approx(1.0, abs=1e-4)


def test_a_concept_script_model_has_one_class_per_digit_and_script_and_takes_either_hint(polydigits_dir, tmp_path):
    from polyglot_vision.serving import Predictor

    recipe, metrics = run_recipe(polydigits_dir, tmp_path / "model", label_granularity="concept_script")
    config = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))
    scripts = sorted({s.script for s in recipe.data.sources})
    assert config["label_granularity"] == "concept_script" and len(config["id2label"]) == 10 * len(scripts)
    assert config["joint_label_concept"]["7@Thai"] == "7" and config["joint_label_script"]["7@Thai"] == "Thai"
    assert config["language_scripts"]["th"] == "Thai" and config["language_scripts"]["fa"] == "Arab"
    assert metrics["labels"] == config["concepts"]
    predictor = Predictor.from_pretrained(tmp_path / "model")
    seven = sorted((polydigits_dir / "latin-fr" / "sept").glob("*.png"))[0]
    (by_script,) = predictor.top_k([seven], k=10, hint="Thai")
    (by_language,) = predictor.top_k([seven], k=10, hint="th")
    assert [(p.concept, p.score) for p in by_script] == [(p.concept, p.score) for p in by_language]
    assert {p.script for p in by_script} == {"Thai"}


def test_frozen_backbone_changes_only_the_head(polydigits_dir, tmp_path):
    from transformers import set_seed

    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import build_model
    from polyglot_vision.training import recipe_from_dict

    overrides = dict(freeze_backbone=True, learning_rate=0.05)
    recipe = recipe_from_dict(tiny_recipe(polydigits_dir, tmp_path / "model", **overrides))
    set_seed(recipe.training.seed)  # what `train` does before it builds the model
    before = {
        k: v.clone()
        for k, v in build_model(recipe.model, LabelSpace.from_yaml(recipe.data.label_space)).state_dict().items()
    }
    run_recipe(polydigits_dir, tmp_path / "model", **overrides)
    after = load_file(tmp_path / "model" / "model.safetensors")
    changed = sorted(k for k in after if not torch.equal(after[k], before[k]))
    assert changed and all(k.startswith("classifier.") for k in changed), changed
    assert any(k.startswith("resnet.") and "running_mean" in k for k in after)  # BatchNorm statistics stayed too


def test_layer_decay_gives_each_depth_a_decaying_learning_rate(polydigits_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForImageClassification

    from polyglot_vision.modeling import parameter_depths
    from polyglot_vision.training import PolyglotTrainer, PolyglotTrainingArguments
    from polyglot_vision.training.augment import BatchPreprocessor

    vit = AutoModelForImageClassification.from_config(
        AutoConfig.for_model(
            "vit",
            image_size=16,
            patch_size=4,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=16,
            num_labels=10,
        )
    )
    args = PolyglotTrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.05, use_cpu=True, layer_decay=0.5
    )
    trainer = PolyglotTrainer(model=vit, args=args, preprocessor=BatchPreprocessor([0.5] * 3, [0.5] * 3))
    optimizer = trainer.create_optimizer()
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    depths, blocks = parameter_depths(vit)
    assert blocks == 3
    by_depth = {}
    for name, param in vit.named_parameters():
        by_depth.setdefault(depths[name], set()).add(lr_of[id(param)])
    assert all(len(lrs) == 1 for lrs in by_depth.values())  # one rate per depth
    rates = [by_depth[d].pop() for d in range(blocks + 2)]
    assert rates == pytest.approx([1e-3 * 0.5 ** (blocks + 1 - d) for d in range(blocks + 2)])
    assert (
        depths["vit.embeddings.patch_embeddings.projection.weight"] == 0 and depths["classifier.weight"] == blocks + 1
    )
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.05}


def test_early_stopping_stops_a_run_that_does_not_improve(polydigits_dir, tmp_path):
    # Nothing trains (a frozen backbone, in eval mode, and a vanishing learning rate): the validation loss
    # never improves by the threshold, so the run stops after 1 + patience evaluations.
    run_recipe(
        polydigits_dir,
        tmp_path / "model",
        max_steps=30,
        freeze_backbone=True,
        learning_rate=1e-12,
        early_stopping_threshold=0.01,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        early_stopping_patience=2,
    )
    checkpoints = sorted((tmp_path / "model").glob("checkpoint-*"), key=lambda p: int(p.name.rpartition("-")[2]))
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 3


@pytest.mark.parametrize(
    "overrides, culprit",
    [
        (dict(early_stopping_patience=2), "eval_strategy"),
        (dict(early_stopping_patience=2, eval_strategy="epoch", save_strategy="epoch"), "load_best_model_at_end"),
        (dict(layer_decay=0), "layer_decay"),
        (dict(augmentation="affine+mirror"), "mirror"),
    ],
)
def test_inconsistent_controls_are_named(polydigits_dir, tmp_path, overrides, culprit):
    from polyglot_vision.errors import UserError
    from polyglot_vision.training import recipe_from_dict

    with pytest.raises(UserError, match=culprit):
        recipe_from_dict(tiny_recipe(polydigits_dir, tmp_path / "model", **overrides))


@pytest.fixture
def joint_model(tmp_path):
    """A joint model whose logits ignore the image: '7' in English is likeliest overall, '1' in Thai."""
    from transformers import AutoConfig, AutoModelForImageClassification, ViTImageProcessorPil

    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import label_config

    pairs = [("1", "en"), ("7", "en"), ("1", "th"), ("7", "th")]
    probabilities = torch.tensor([0.05, 0.50, 0.30, 0.15])
    config = AutoConfig.for_model(
        "resnet",
        embedding_size=4,
        hidden_sizes=[4],
        depths=[1],
        layer_type="basic",
        **label_config(LabelSpace.from_yaml(DIGITS), pairs),
    )
    model = AutoModelForImageClassification.from_config(config)
    with torch.no_grad():
        model.classifier[-1].weight.zero_()
        model.classifier[-1].bias.copy_(probabilities.log())
    folder = tmp_path / "joint"
    model.save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 16, "width": 16}).save_pretrained(folder)
    image = tmp_path / "numeral.png"
    from PIL import Image

    Image.new("RGB", (16, 16), "white").save(image)
    return folder, image


def test_a_language_hint_changes_the_answer_for_a_shared_shape(joint_model, capsys):
    from polyglot_vision.cli import main
    from polyglot_vision.errors import UserError
    from polyglot_vision.serving import Predictor

    folder, image = joint_model
    predictor = Predictor.from_pretrained(folder)
    (plain,) = predictor.top_k([image], k=2, language="fr")
    assert [(p.concept, p.name) for p in plain] == [("7", "sept"), ("1", "un")]
    assert [p.score for p in plain] == pytest.approx([0.65, 0.35], abs=1e-4)  # summed over languages
    (thai,) = predictor.top_k([image], k=2, hint="th")
    assert [p.concept for p in thai] == ["1", "7"]
    assert [p.score for p in thai] == pytest.approx([2 / 3, 1 / 3], abs=1e-4)
    (english,) = predictor.top_k([image], k=1, hint="en-GB")
    assert english[0].concept == "7"
    with pytest.raises(UserError, match="'de'"):
        predictor.top_k([image], hint="de")

    assert main(["predict", str(folder), str(image), "--hint", "th", "--top-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["predictions"][0]["concept"] == "1"
    assert main(["predict", str(folder), str(image), "--hint", "xx"]) == 2
    assert "'xx'" in capsys.readouterr().err


def test_a_script_hint_works_like_a_language_hint_and_the_answer_names_the_script(joint_model, capsys):
    from polyglot_vision.cli import main
    from polyglot_vision.serving import Predictor

    folder, image = joint_model
    predictor = Predictor.from_pretrained(folder)
    assert predictor.scripts == ["Latn", "Thai"]
    (plain,) = predictor.top_k([image], k=2)
    # '7' is likeliest in Latin (0.50 of 0.65), '1' in Thai (0.30 of 0.35)
    assert [(p.concept, p.script, p.script_name) for p in plain] == [("7", "Latn", "Latin"), ("1", "Thai", "Thai")]
    for hint in ("Thai", "thai", "THAI"):
        (thai,) = predictor.top_k([image], k=2, hint=hint)
        assert [(p.concept, p.script) for p in thai] == [("1", "Thai"), ("7", "Thai")]
        assert [p.score for p in thai] == pytest.approx([2 / 3, 1 / 3], abs=1e-4)

    assert main(["predict", str(folder), str(image), "--hint", "Thai", "--top-k", "1", "--lang", "fr"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{image}: un (1) · Thai 66.7%"
    assert main(["predict", str(folder), str(image), "--top-k", "1", "--json"]) == 0
    (top,) = json.loads(capsys.readouterr().out)[0]["predictions"]
    assert (top["concept"], top["script"], top["script_name"]) == ("7", "Latn", "Latin")
    assert main(["predict", str(folder), str(image), "--hint", "Deva"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert (
        line == "polyglot-vision: error: hint 'Deva': not a script (Latn, Thai) nor a language (en, th) of this model"
    )


def test_a_concept_model_refuses_a_hint_in_one_line(tmp_path, capsys):
    from transformers import AutoConfig, AutoModelForImageClassification, ViTImageProcessorPil

    from polyglot_vision.cli import main
    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import label_config

    config = AutoConfig.for_model(
        "resnet", embedding_size=4, hidden_sizes=[4], depths=[1], **label_config(LabelSpace.from_yaml(DIGITS))
    )
    AutoModelForImageClassification.from_config(config).save_pretrained(tmp_path / "m")
    ViTImageProcessorPil(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "m")
    from PIL import Image

    Image.new("RGB", (16, 16), "white").save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "x.png"), "--top-k", "1"]) == 0
    assert "·" not in capsys.readouterr().out  # a concept model does not claim a script
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "x.png"), "--hint", "Deva"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert line.startswith("polyglot-vision: error: hint 'Deva': this model has one class per concept")


def test_the_fitted_temperature_is_folded_into_the_head_so_pipeline_gives_the_predictor_scores(tmp_path):
    from PIL import Image
    from transformers import AutoConfig, AutoModelForImageClassification, ViTImageProcessorPil, pipeline

    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import fit_temperature, fold_temperature, label_config
    from polyglot_vision.serving import Predictor

    # NLL-optimal temperature: logits that are 3 x too confident come back to their own distribution.
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 10)
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    assert fit_temperature(3.0 * true_logits, labels) == pytest.approx(3.0, rel=0.1)

    config = AutoConfig.for_model(
        "resnet", embedding_size=8, hidden_sizes=[8], depths=[1], **label_config(LabelSpace.from_yaml(DIGITS))
    )
    model = AutoModelForImageClassification.from_config(config).eval()
    processor = ViTImageProcessorPil(size={"height": 16, "width": 16})
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)) for i in range(3)
    ]
    pixels = processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        before = model(pixel_values=pixels).logits
        fold_temperature(model, 2.5)
        after = model(pixel_values=pixels).logits
    assert torch.allclose(after, before / 2.5, atol=1e-5)
    assert model.config.softmax_temperature == pytest.approx(2.5)
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    assert AutoConfig.from_pretrained(tmp_path / "m").softmax_temperature == pytest.approx(2.5)

    classify = pipeline("image-classification", model=str(tmp_path / "m"))
    predictor = Predictor.from_pretrained(tmp_path / "m")
    for image, ours in zip(images, predictor.top_k(images, k=10)):
        theirs = {row["label"]: row["score"] for row in classify(image, top_k=10)}
        assert {p.concept: p.score for p in ours} == pytest.approx(theirs, abs=1e-5)


def test_pixel_batches_read_what_the_dataset_holds(tmp_path):
    from datasets import Array3D, ClassLabel, Dataset, Features, concatenate_datasets

    from polyglot_vision.data import PixelBatches, collate

    features = Features({"pixel_values": Array3D(shape=(3, 4, 4), dtype="uint8"), "label": ClassLabel(num_classes=10)})
    rng = np.random.default_rng(0)
    parts = [
        Dataset.from_dict(
            {"pixel_values": rng.integers(0, 255, (n, 3, 4, 4), dtype=np.uint8), "label": rng.integers(0, 10, n)},
            features=features,
        )
        for n in (5, 7)
    ]
    dataset = concatenate_datasets(parts).select([11, 0, 3, 6, 2, 9, 8])  # several Arrow chunks, a selection
    dataset.set_format("torch", columns=["pixel_values"], dtype=torch.uint8, output_all_columns=True)
    batches = PixelBatches(dataset)
    order = [6, 0, 3, 3, 5]
    batch = collate(batches.__getitems__(order))
    expected = collate([dataset[i] for i in order])
    assert torch.equal(batch["pixel_values"], expected["pixel_values"])
    assert torch.equal(batch["labels"], expected["labels"])
    loader = torch.utils.data.DataLoader(batches, batch_size=3, sampler=order, collate_fn=collate)
    assert torch.equal(torch.cat([b["pixel_values"] for b in loader]), expected["pixel_values"])


def test_the_trainer_estimates_flops_from_the_parameters_counted_once(tmp_path):
    from transformers import AutoConfig, AutoModelForImageClassification, TrainingArguments

    from polyglot_vision.training import PolyglotTrainer
    from polyglot_vision.training.augment import BatchPreprocessor

    model = AutoModelForImageClassification.from_config(
        AutoConfig.for_model(
            "resnet", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=10
        )
    )
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = PolyglotTrainer(model=model, args=args, preprocessor=BatchPreprocessor([0.5] * 3, [0.5] * 3))
    assert (
        trainer.floating_point_ops({"pixel_values": torch.zeros(4, 3, 16, 16)})
        == 6 * 4 * 3 * 16 * 16 * model.num_parameters()
    )


def test_a_validation_split_that_rounds_to_nothing_is_one_line_before_any_model(polydigits_dir, tmp_path, capsys):
    from conftest import fails, write_yaml

    out = tmp_path / "model"
    recipe = tiny_recipe(polydigits_dir, out, validation_fraction=0.01, eval_strategy="epoch")
    argv = ["train", write_yaml(tmp_path / "recipe.yaml", recipe)]
    fails(capsys, argv, "validation_fraction: 0.01", "eval_strategy")
    assert not (out / "model.safetensors").exists()
