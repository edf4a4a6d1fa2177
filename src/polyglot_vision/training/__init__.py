"""Training: recipes, the batch augmentation, the Trainer, and the end-to-end run of a recipe."""

from .arguments import PolyglotTrainingArguments
from .augment import BatchPreprocessor, parse_policy
from .recipe import Recipe, load_recipe, parse_overrides, read_recipe, recipe_from_dict, recipe_from_file
from .run import (
    build_trainer,
    check_cache_room,
    end_distributed,
    export,
    joint_column,
    joint_pairs,
    language_scripts,
    load_data,
    train,
)
from .trainer import PolyglotTrainer, classification_loss, compute_metrics_for

__all__ = [
    "BatchPreprocessor",
    "PolyglotTrainer",
    "PolyglotTrainingArguments",
    "Recipe",
    "build_trainer",
    "check_cache_room",
    "classification_loss",
    "compute_metrics_for",
    "end_distributed",
    "export",
    "joint_column",
    "joint_pairs",
    "language_scripts",
    "load_data",
    "load_recipe",
    "parse_overrides",
    "parse_policy",
    "read_recipe",
    "recipe_from_dict",
    "recipe_from_file",
    "train",
]
