"""Fine-tune an image classifier from a recipe: the `accelerate launch` target.

Usage:
    accelerate launch scripts/train.py recipes/polydigits/quickstart.yaml
    accelerate launch --multi_gpu --num_processes 8 scripts/train.py recipes/mnist-mix/vit.yaml --learning_rate 3e-4
    accelerate launch --config_file recipes/accelerate_configs/cpu_ddp.yaml \
        scripts/train.py recipes/polydigits/quickstart.yaml
    python scripts/train.py recipes/polydigits/quickstart.yaml --resume_from_checkpoint auto --save_strategy epoch
    python scripts/train.py recipes/polydigits/quickstart.yaml --max_steps 10

Any recipe key can follow the recipe as `--key value`. The same function runs
behind `polyglot-vision train`; recipes/README.md describes the accelerate
configs (cpu_ddp, ddp, fsdp, deepspeed_zero2, multi_node).
"""

import sys

from polyglot_vision.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
