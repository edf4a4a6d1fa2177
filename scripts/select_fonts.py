"""Choose PolyDigits' typefaces from fontsource's Google Fonts families; write the font table and pin the packages.

Usage:
    python scripts/select_fonts.py --work /tmp/select-fonts     # downloads the candidates (a few GB) there
    polyglot-vision fetch --only fonts                           # then users fetch what the lock names

Writes src/polyglot_vision/builtin_data/fonts.yaml (every family kept, its files, licence, publisher, lineage
and held-out side) and replaces the lock's "fonts" packages with exactly the packages the table uses.
"""

import argparse
import sys
from pathlib import Path

from polyglot_vision.builtin_data.font_selection import select_fonts, write_selection
from polyglot_vision.errors import UserError

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the downloaded candidates")
    args = parser.parse_args()
    try:
        kept = select_fonts(args.work)
        for line in write_selection(kept):
            print(line)
    except UserError as err:
        sys.exit(f"select_fonts: error: {err}")
