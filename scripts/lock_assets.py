"""Pin npm packages into the built-in data's lock (src/polyglot_vision/builtin_data/assets.lock.json).

Usage:
    python scripts/lock_assets.py --purpose emoji @iconify-json/twemoji@1.2.5 @iconify-json/noto
    polyglot-vision fetch          # then fetch and verify them

A name without a version pins the newest one. Users never run this: they fetch what the lock names.
"""

import argparse
import sys

from polyglot_vision.builtin_data.assets import add_to_lock
from polyglot_vision.errors import UserError

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", metavar="PACKAGE[@VERSION]")
    parser.add_argument("--purpose", required=True, help="what reads them: fonts, emoji, names, …")
    args = parser.parse_args()
    try:
        for package in add_to_lock(args.specs, args.purpose):
            print(f"{package.spec:<50} {package.license:<14} {package.integrity[:20]}…")
    except UserError as err:
        sys.exit(f"lock_assets: error: {err}")
