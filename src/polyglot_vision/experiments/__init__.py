"""Experiments: which language teaches which (transfer matrix), and few-shot adaptation to an unseen script."""

from .adaptation import adaptation_curve
from .transfer import transfer_matrix

__all__ = ["adaptation_curve", "transfer_matrix"]
