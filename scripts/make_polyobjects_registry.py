"""Choose the PolyObjects concepts from the pinned packages and write them down: the concept table beside the
generator (src/polyglot_vision/builtin_data/polyobjects.json) and the label registry (CLDR display names).

Usage:
    polyglot-vision fetch
    python scripts/make_polyobjects_registry.py [recipes/labels/polyobjects.yaml]

Maintainers run this when a pinned package changes, and review the diff; tests check that both files are what
the packages give.
"""

import sys

from polyglot_vision.builtin_data.polyobjects import write_concept_table, write_registry

if __name__ == "__main__":
    print(write_concept_table())
    print(write_registry(sys.argv[1] if len(sys.argv) > 1 else "recipes/labels/polyobjects.yaml"))
