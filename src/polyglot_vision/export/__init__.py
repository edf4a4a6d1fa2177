"""Export: the model card and dataset card, and what a Hub repository gets."""

from .cards import render_card, render_dataset_card, write_dataset_card, write_model_card
from .hub import check_repo_id, dataset_upload_plan, files_to_upload, push_dataset, push_model, upload_plan

__all__ = [
    "check_repo_id",
    "dataset_upload_plan",
    "files_to_upload",
    "push_dataset",
    "push_model",
    "render_card",
    "render_dataset_card",
    "write_dataset_card",
    "upload_plan",
    "write_model_card",
]
