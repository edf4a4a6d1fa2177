"""polyglot-vision: fine-tune image classifiers on image sets labelled in many languages.

The public API, one import away (loaded on first use, so that `import polyglot_vision` stays light):

    from polyglot_vision import load_recipe, train, Predictor
    recipe = load_recipe("recipes/polydigits/quickstart.yaml", ["--num_train_epochs", "2"])
    metrics = train(recipe)
    Predictor.from_pretrained(recipe.training.output_dir).top_k(["seven.png"], k=3, language="fr")
"""

from importlib import import_module

__version__ = "0.1.0"

# name -> the module that defines it
_API = {
    "UserError": "errors",
    "load_image": "images",
    "LabelSpace": "labels",
    "align_sources": "labels",
    "DataArguments": "data",
    "SourceConfig": "data",
    "load_source": "data",
    "unify": "data",
    "build_dataset": "data",
    "ModelArguments": "modeling",
    "build_model": "modeling",
    "build_image_processor": "modeling",
    "PolyglotTrainingArguments": "training",
    "PolyglotTrainer": "training",
    "Recipe": "training",
    "load_recipe": "training",
    "train": "training",
    "evaluate_model": "evaluation",
    "write_model_card": "export",
    "push_model": "export",
    "transfer_matrix": "experiments",
    "adaptation_curve": "experiments",
    "Predictor": "serving",
    "generate_polydigits": "builtin_data",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
