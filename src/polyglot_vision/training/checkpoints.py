"""Which checkpoint a run resumes from, judged by its files, and whether a finished run has anything left to do.

The Trainer writes a checkpoint's weights first and `trainer_state.json` last, but a full
disk or a kill can leave any of its files short: a checkpoint is whole only when its
state parses, its safetensors headers cover their files and its optimizer archive is
complete. A finished run is never trained again in silence under other settings: the
settings that shape the weights are kept in each checkpoint (`training_settings.json`,
left out of a push with the rest of the training state) and compared.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import zipfile
from pathlib import Path

from safetensors import safe_open
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..errors import UserError
from ..outputs import write_json

logger = logging.getLogger(__name__)

SETTINGS_FILE = "training_settings.json"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# Keys that do not change the weights a run ends with: where and how often it writes, logs,
# evaluates or pushes, how it reads batches, which process it is; a finished run asked again
# with other values of these is the same run.
IGNORED_PREFIXES = ("logging_", "log_", "save_", "hub_", "push_", "dataloader_", "trackio_", "eval_", "do_", "report_")
IGNORED_SETTINGS = {
    "output_dir",
    "overwrite_output_dir",
    "resume_from_checkpoint",
    "local_rank",
    "run_name",
    "project",
    "disable_tqdm",
    "per_device_eval_batch_size",
    "prediction_loss_only",
    "include_for_metrics",
    "include_num_input_tokens_seen",
    "batch_eval_metrics",
    "skip_memory_metrics",
    "debug",
    "ddp_timeout",
    "enable_jit_checkpoint",
    "dataset_dir",
    "cache_dir",
    "num_proc",
}


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` is not a whole checkpoint (a short phrase naming the file), or None when it is."""
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return "trainer_state.json is cut short"
    weights = sorted(folder.glob("*.safetensors"))
    sharded = [p for p in folder.iterdir() if p.name.startswith(("pytorch_model_fsdp", "global_step"))]
    if not weights and not sharded:
        return "no model weights (model.safetensors)"
    for path in weights:
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception:  # safetensors raises its own error type for a short or garbled header
            return f"{path.name} is cut short or damaged"
    optimizers = [folder / name for name in ("optimizer.pt", "optimizer.bin") if (folder / name).is_file()]
    if not optimizers and not sharded and not list(folder.glob("optimizer*")):
        return "no optimizer state (optimizer.pt)"
    for path in [*optimizers, folder / "scheduler.pt"]:
        if path.is_file() and not zipfile.is_zipfile(path):
            return f"{path.name} is cut short or damaged"
    return None


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The checkpoint-N folders of `output_dir`, newest (highest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)), reverse=True)


def last_whole_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest whole checkpoint of `output_dir`; a damaged newer one is named on the console.

    Damaged checkpoints with no whole one before them are one error line: resuming would
    start over in silence, and training fresh would overwrite them.
    """
    damaged = []
    for folder in checkpoints(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            for name, why in damaged:
                logger.warning("checkpoint %s is damaged (%s); resuming from %s instead", name, why, folder)
            return folder
        damaged.append((folder, problem))
    if damaged:
        shown = "; ".join(f"{folder.name}: {why}" for folder, why in damaged[:3])
        raise UserError(
            f"output_dir {output_dir}: no whole checkpoint to resume from ({shown}); remove the damaged "
            "checkpoint folders to start fresh, or set `resume_from_checkpoint` to false"
        )
    return None


def check_explicit_checkpoint(path: str) -> str:
    """A checkpoint named in the recipe, whole, or one line saying which file is not."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"resume_from_checkpoint {path}: no such checkpoint folder, or use `auto`")
    problem = checkpoint_problem(folder)
    if problem is not None:
        raise UserError(
            f"resume_from_checkpoint {path}: not a whole checkpoint ({problem}); name another or use `auto`"
        )
    return path


# ---- a finished run ---------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return _plain(dataclasses.asdict(value))
    return getattr(value, "value", None) if hasattr(value, "value") else str(value)


def training_settings(recipe) -> dict:
    """The recipe's settings that shape the trained weights, as plain JSON values (no token, no paths out)."""
    settings = {}
    for part in (recipe.model, recipe.data):
        for field in dataclasses.fields(part):
            settings[field.name] = _plain(getattr(part, field.name))
    for field in dataclasses.fields(recipe.training):
        if field.init:
            settings[field.name] = _plain(getattr(recipe.training, field.name))
    return {
        key: value
        for key, value in sorted(settings.items())
        if key not in IGNORED_SETTINGS and not key.startswith(IGNORED_PREFIXES) and "token" not in key
    }


class RecordSettings(TrainerCallback):
    """Writes the run's settings into each checkpoint it saves, for a later `auto` to compare."""

    def __init__(self, settings: dict):
        self.settings = settings

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_json(folder / SETTINGS_FILE, self.settings)


def finished_state(checkpoint: Path, args) -> dict | None:
    """The trainer state of `checkpoint` when the run that wrote it has nothing left to train under `args`."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    step, planned = int(state.get("global_step") or 0), int(state.get("max_steps") or 0)
    if args.max_steps is not None and args.max_steps > 0:
        return state if step >= args.max_steps else None
    epochs = float(state.get("num_train_epochs") or 0)
    return state if planned and step >= planned and args.num_train_epochs <= epochs else None


def _shown(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def settings_change(checkpoint: Path, settings: dict) -> list[str] | None:
    """`key old -> new` for each setting that differs from the run that saved `checkpoint`; None when unrecorded."""
    path = checkpoint / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    settings = json.loads(json.dumps(settings))  # compared as they are stored: lists, not tuples

    def same(key) -> bool:
        return json.dumps(before.get(key), sort_keys=True) == json.dumps(settings.get(key), sort_keys=True)

    keys = sorted(set(before) | set(settings))
    return [f"{key} {_shown(before.get(key))} -> {_shown(settings.get(key))}" for key in keys if not same(key)]


def resume_point(recipe, checkpoint: str | None) -> tuple[bool, str | None]:
    """(nothing left to do, the checkpoint to resume from) after `resolve_checkpoint` chose `checkpoint`.

    A finished and exported run of the same settings has nothing left to do (said on the
    console). A finished run asked to go on under other settings is one error line: resuming
    would train no step and publish the old weights under the new recipe; with
    `overwrite_output_dir` it is trained anew instead (no checkpoint).
    """
    args = recipe.training
    if checkpoint is None:
        return False, None
    checkpoint = Path(checkpoint)
    state = finished_state(checkpoint, args)
    if state is None:
        return False, str(checkpoint)
    output_dir = Path(args.output_dir)
    step = f"step {state.get('global_step')} of {state.get('max_steps')}"
    done = f"{output_dir} holds a finished run ({checkpoint.name}, {step})"
    changed = settings_change(Path(checkpoint), training_settings(recipe))
    if changed and args.overwrite_output_dir:
        logger.warning("%s under other settings; --overwrite_output_dir: training anew", done)
        return False, None
    if changed:
        raise UserError(
            f"output_dir {done}, trained with other settings ({'; '.join(changed[:4])}"
            f"{'; …' if len(changed) > 4 else ''}); choose a new output_dir, or pass --overwrite_output_dir true "
            "to train anew there"
        )
    if not (output_dir / "model.safetensors").is_file() and not list(output_dir.glob("model*.safetensors")):
        return False, str(checkpoint)  # killed after its last step but before export: resuming exports it
    note = "" if changed is not None else " (its settings were not recorded)"
    print(f"already trained: {done}{note}; nothing left to train, the model is left as it is", flush=True)
    return True, None
