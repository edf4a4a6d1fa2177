"""The Hub: what a model or dataset repository gets, and the push.

`upload_plan` is what `polyglot-vision push` (and a recipe's `push_to_hub: true`) sends,
and why: only regular files inside the model folder that the tool itself writes there
(weights, config, preprocessor, card, metrics and plots), never through a link, never
checkpoints, optimizer states or training_args.bin. Files are opened without following
links, so one swapped for a link after the plan is not read either.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from datasets import load_from_disk
from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..errors import UserError, first_line
from ..evaluation.report import PLOTS
from .cards import CONFUSION_PNG, DATASET_FILES

# Top-level files that export writes into a model folder (and the Trainer's `save_metrics`), and what each is.
UPLOAD_PATTERNS = {
    "config.json": "model configuration",
    "preprocessor_config.json": "image processor configuration",
    "model.safetensors": "weights",
    "model-*-of-*.safetensors": "weights (a shard)",
    "model.safetensors.index.json": "index of the weight shards",
    "README.md": "model card",
    "metrics.json": "test metrics",
    "train_results.json": "training metrics",
    "eval_results.json": "validation metrics",
    "test_results.json": "test metrics",
    "all_results.json": "all metrics",
    CONFUSION_PNG: "plot for the model card",
}
# Files that `evaluate` writes in `evaluation-<split>/` report folders (see evaluation/report.py).
REPORT_PATTERNS = {
    "report.md": "evaluation report",
    "metrics.json": "evaluation metrics",
    **{name: "evaluation plot" for name in PLOTS.values()},
}
# What else a model folder holds that stays on this machine, and why.
LOCAL_ONLY = {
    "checkpoint-*": "training checkpoint, stays local",
    "runs": "training logs, stay local",
    "training_args.bin": "training state, stays local",
    "optimizer.pt": "training state, stays local",
    "scheduler.pt": "training state, stays local",
    "rng_state*.pth": "training state, stays local",
    "trainer_state.json": "training state, stays local",
    "dataset": "prepared dataset, pushed with `prepare --push-to-hub`",
    ".polyglot-vision": "marker of a folder the tool wrote",
}


@dataclass(frozen=True)
class PlannedFile:
    """One entry of a model folder: its path inside the folder, whether it is uploaded, and why (or why not)."""

    name: str
    upload: bool
    reason: str


def check_repo_id(repo_id: str) -> str:
    """An `owner/name` the Hub accepts, or one line that says why not."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"--repo-id {repo_id!r} is not a valid repository id ({first_line(err)})") from None
    return repo_id


def _match(name: str, patterns: dict) -> str | None:
    return next((why for pattern, why in patterns.items() if fnmatch.fnmatchcase(name, pattern)), None)


def _judge(entry: os.DirEntry, patterns: dict) -> tuple[bool, str]:
    if entry.is_symlink():
        return False, "a link: links are never followed"
    if entry.is_dir(follow_symlinks=False):
        return False, _match(entry.name, LOCAL_ONLY) or "a folder polyglot-vision does not push"
    if not entry.is_file(follow_symlinks=False):
        return False, "not a regular file"
    why = _match(entry.name, patterns)
    if why is None:
        return False, _match(entry.name, LOCAL_ONLY) or "not a file polyglot-vision writes for the Hub"
    return True, why


def upload_plan(model_dir: str | Path) -> list[PlannedFile]:
    """Every entry of an exported model folder (and of its report folders): uploaded or not, and why; sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model folder {model_dir} not found")
    missing = [name for name in ("config.json", "README.md") if not (model_dir / name).is_file()]
    if missing:
        raise UserError(f"model folder {model_dir}: {', '.join(missing)} missing; is it a model trained here?")
    plan = []
    with os.scandir(model_dir) as entries:
        for entry in entries:
            if entry.name.startswith("evaluation-") and entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as inside:
                    for item in inside:
                        upload, why = _judge(item, REPORT_PATTERNS)
                        plan.append(PlannedFile(f"{entry.name}/{item.name}", upload, why))
                continue
            upload, why = _judge(entry, UPLOAD_PATTERNS)
            plan.append(PlannedFile(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""), upload, why))
    return sorted(plan, key=lambda f: f.name)


def files_to_upload(model_dir: str | Path) -> list[Path]:
    """The files of an exported model folder that belong in its Hub repository, sorted."""
    return [Path(model_dir) / f.name for f in upload_plan(model_dir) if f.upload]


def _open_inside(model_dir: Path, name: str, stack: ExitStack):
    """`name` (a path inside `model_dir`) opened for reading without following a link at any step."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    folder = os.open(model_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        *parts, last = name.split("/")
        for part in parts:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(last, os.O_RDONLY | nofollow, dir_fd=folder)
    except OSError as err:
        raise UserError(f"model folder {model_dir}: {name} cannot be read safely ({err.strerror or err})") from None
    finally:
        os.close(folder)
    handle = stack.enter_context(os.fdopen(fd, "rb"))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise UserError(f"model folder {model_dir}: {name} is not a regular file")
    return handle


def push_model(
    model_dir: str | Path,
    repo_id: str,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload model trained with polyglot-vision",
) -> str:
    """Create (or reuse) the model repository and upload the files of `upload_plan` in one commit; returns its URL."""
    model_dir = Path(model_dir)
    names = [f.name for f in upload_plan(model_dir) if f.upload]
    check_repo_id(repo_id)
    with ExitStack() as stack:
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=_open_inside(model_dir, name, stack))
            for name in names
        ]
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
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
