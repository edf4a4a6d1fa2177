"""Hugging Face Space: draw or upload a numeral in any script, read the answer in your language.

The model comes from the environment variable MODEL_ID (a Hub model id or a local model folder);
without it the app still starts and says how to set it.

    MODEL_ID=outputs/polydigits/quickstart python space/app.py
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from polyglot_vision.serving.demo import launch, load_predictor_or_message  # noqa: E402

predictor, notice = load_predictor_or_message(os.environ.get("MODEL_ID", "").strip())

if __name__ == "__main__":
    # host=None: Gradio binds GRADIO_SERVER_NAME (0.0.0.0 on Spaces), else 127.0.0.1.
    launch(predictor, host=None, examples_dir=Path(__file__).parent / "examples", notice=notice)
