"""The Hub: what a model or dataset repository gets, and the push.

`files_to_upload` is what `polyglot-vision push` (and a recipe's `push_to_hub: true`)
sends: weights, config, preprocessor, card, metrics and plots, never checkpoints,
optimizer states or training_args.bin.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from datasets import load_from_disk
from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..errors import UserError, first_line
from .cards import DATASET_FILES

# Top-level files of an exported model that a Hub repository gets.
UPLOAD_PATTERNS = (
    "config.json",
    "preprocessor_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "README.md",
    "metrics.json",
    "*_results.json",
    "*.png",
)
# Files in `evaluation-<split>/` report folders (see evaluation/report.py).
REPORT_PATTERNS = ("report.md", "metrics.json", "*.png")


def check_repo_id(repo_id: str) -> str:
    """An `owner/name` the Hub accepts, or one line that says why not."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"--repo-id {repo_id!r} is not a valid repository id ({first_line(err)})") from None
    return repo_id


def files_to_upload(model_dir: str | Path) -> list[Path]:
    """The files of an exported model folder that belong in its Hub repository, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model folder {model_dir} not found")
    missing = [name for name in ("config.json", "README.md") if not (model_dir / name).is_file()]
    if missing:
        raise UserError(f"model folder {model_dir}: {', '.join(missing)} missing; is it a model trained here?")
    files = [
        path
        for path in model_dir.iterdir()
        if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in UPLOAD_PATTERNS)
    ]
    for report in model_dir.glob("evaluation-*"):
        if report.is_dir():
            files += [
                p for p in report.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, q) for q in REPORT_PATTERNS)
            ]
    return sorted(files, key=lambda p: p.relative_to(model_dir).as_posix())


def push_model(
    model_dir: str | Path,
    repo_id: str,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload model trained with polyglot-vision",
) -> str:
    """Create (or reuse) the model repository and upload `files_to_upload` in one commit; returns its URL."""
    model_dir = Path(model_dir)
    files = files_to_upload(model_dir)
    check_repo_id(repo_id)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        operations = [
            CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p)) for p in files
        ]
        api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type="model")
    except Exception as err:  # offline, no token, no rights: one line that names the repository
        reason = first_line(err)
        raise UserError(f"push to {repo_id} failed ({reason})") from None
    return str(url)


def dataset_upload_plan(dataset_dir: str | Path) -> list[str]:
    """What `prepare --push-to-hub` uploads: a parquet file per split (as `push_to_hub` writes them), card, reports."""
    dataset_dir = Path(dataset_dir)
    dataset = load_from_disk(str(dataset_dir))
    files = [
        f"data/{split}-00000-of-00001.parquet ({len(part)} images)" for split, part in dataset.items() if len(part)
    ]
    return files + [name for name in DATASET_FILES if (dataset_dir / name).is_file()]


def push_dataset(dataset_dir: str | Path, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """Push the prepared DatasetDict with `push_to_hub`, then the card (keeping the configs it wrote), the reports."""
    dataset_dir = Path(dataset_dir)
    dataset = load_from_disk(str(dataset_dir))
    ours = DatasetCard.load(dataset_dir / "README.md")
    try:
        dataset.push_to_hub(repo_id, private=private, token=token)
        generated = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        for key in ("configs", "dataset_info"):  # what the Hub's viewer and load_dataset read
            if generated.data.get(key) is not None:
                ours.data[key] = generated.data.get(key)
        ours.push_to_hub(repo_id, repo_type="dataset", token=token)
        api = HfApi(token=token)
        for name in DATASET_FILES[1:]:
            if (dataset_dir / name).is_file():
                api.upload_file(
                    path_or_fileobj=str(dataset_dir / name), path_in_repo=name, repo_id=repo_id, repo_type="dataset"
                )
    except Exception as err:  # offline, no token, no rights: one line that names the repository
        raise UserError(f"push to {repo_id} failed ({first_line(err)})") from None
    return f"https://huggingface.co/datasets/{repo_id}"
