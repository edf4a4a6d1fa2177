"""Write synthetic image folders for recipes/objects/: English, French and German word labels.

Usage:
    python scripts/make_objects.py data/objects [--per-class 40] [--image-size 32]
"""

from __future__ import annotations

import argparse

from polyglot_vision.builtin_data.objects import write_object_folders

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    sources = write_object_folders(args.out, per_class=args.per_class, image_size=args.image_size)
    print(f"Wrote {len(sources)} image folders to {args.out}")
