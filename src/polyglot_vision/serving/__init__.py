"""Serving: localized top-k predictions (`Predictor`) for the command line, and the Gradio demo (`serving.demo`).

The demo needs gradio (the `demo` extra) and is imported from `polyglot_vision.serving.demo` on its own.
"""

from .predictor import Answer, Prediction, Predictor

__all__ = ["Answer", "Prediction", "Predictor"]
