"""`sampler: language|class|none`: training batches balanced by group, p ∝ n^τ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset

from polyglot_vision.data.sampler import BalancedSampler, balanced_weights, build_sampler

GROUPS = ["en"] * 90 + ["fr"] * 10


@pytest.mark.parametrize("temperature, share_fr", [(1.0, 0.1), (0.5, 0.25), (0.0, 0.5)])
def test_group_share_follows_n_to_the_tau(temperature, share_fr):
    weights = balanced_weights(GROUPS, temperature)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[90:].sum() == pytest.approx(share_fr)


def test_sampler_is_seeded_by_epoch_and_balances():
    sampler = BalancedSampler(GROUPS * 50, temperature=0.0, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler) == 5000 and first == list(sampler)  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != first
    share_fr = np.mean([GROUPS[i % 100] == "fr" for i in first])
    assert 0.46 < share_fr < 0.54


def test_build_sampler_reads_the_column():
    dataset = Dataset.from_dict({"language": GROUPS, "label": [0] * 50 + [1] * 50})
    assert build_sampler(dataset, "none", 0.5, 0) is None
    assert np.allclose(build_sampler(dataset, "class", 0.0, 0).weights[[0, 99]].numpy(), 1 / 100)
    by_language = build_sampler(dataset, "language", 0.0, 0).weights.numpy()
    assert by_language[90:].sum() == pytest.approx(0.5)


def test_source_weights_scale_each_source_share():
    dataset = Dataset.from_dict({"language": GROUPS, "label": [0] * 100, "source": ["a"] * 50 + ["b"] * 50})
    assert build_sampler(dataset, "none", 0.5, 0, {"a": 1.0, "b": 1}) is None  # all 1: the Trainer's own shuffle
    weighted = build_sampler(dataset, "none", 0.5, 0, {"a": 1.0, "b": 3.0}).weights.numpy()
    assert weighted[50:].sum() == pytest.approx(0.75)  # 50 images x 3 against 50 x 1
    # with the language balance: en and fr each 0.5 (τ = 0), then source b (en 40 + fr 10) counts three times
    both = build_sampler(dataset, "language", 0.0, 0, {"a": 1.0, "b": 3.0}).weights.numpy()
    en_a, en_b, fr_b = 50 / 90 * 0.5, 40 / 90 * 0.5 * 3, 0.5 * 3
    assert both[50:].sum() == pytest.approx((en_b + fr_b) / (en_a + en_b + fr_b))


def test_the_trainer_draws_batches_from_the_sampler(tmp_path):
    from transformers import TrainingArguments

    from polyglot_vision.training import PolyglotTrainer
    from polyglot_vision.training.augment import BatchPreprocessor

    dataset = Dataset.from_dict({"language": GROUPS * 10, "label": list(range(1000))})
    args = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=50,
        remove_unused_columns=False,
    )
    trainer = PolyglotTrainer(
        model=torch.nn.Linear(1, 1),
        args=args,
        train_dataset=dataset,
        data_collator=lambda examples: {"language": [e["language"] for e in examples]},
        preprocessor=BatchPreprocessor([0.5] * 3, [0.5] * 3),
        sampler=build_sampler(dataset, "language", 0.0, seed=0),
    )
    languages = [lang for batch in trainer.get_train_dataloader() for lang in batch["language"]]
    assert len(languages) == 1000
    assert 0.44 < languages.count("fr") / 1000 < 0.56  # 10 % of the images, half of the draws


def test_unknown_sampler_is_a_user_error(write_recipe):
    import yaml

    from polyglot_vision.errors import UserError
    from polyglot_vision.training import recipe_from_dict

    raw = yaml.safe_load(write_recipe(sampler="script").read_text(encoding="utf-8"))
    with pytest.raises(UserError, match="`sampler` must be one of none, language, class"):
        recipe_from_dict(raw)
