"""Hugging Face Space: draw or upload a numeral in any script, read the answer in your language.

The model comes from the environment variable MODEL_ID (a Hub model id or a local model folder; several,
separated by commas, give a tab each: PolyDigits beside PolyObjects); without it the app still starts and
says how to set it.

    MODEL_ID=outputs/polydigits/quickstart python space/app.py
    MODEL_ID=outputs/polydigits/quickstart,outputs/polyobjects/quickstart python space/app.py
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from polyglot_vision.serving.demo import launch, load_predictors_or_message  # noqa: E402

predictor, notice = load_predictors_or_message(os.environ.get("MODEL_ID", ""))

if __name__ == "__main__":
    # host=None: Gradio binds GRADIO_SERVER_NAME (0.0.0.0 on Spaces), else 127.0.0.1.
    launch(predictor, host=None, examples_dir=Path(__file__).parent / "examples", notice=notice)
