"""polyglot-vision: fine-tune image classifiers on image sets labelled in many languages."""

__version__ = "0.1.0"
