"""The package's layout: imports flow down the pipeline only, and the shipped remote code is the package's."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from hf_ad.constants import REMOTE_CODE

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hf_ad"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name, sub-package inits as `package.__init__` (importing
    `hf_ad.data.histories` from outside runs `hf_ad/data/__init__.py` first). The root package's init is
    left out: it runs before any module of the package, so it closes no cycle."""
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts != (PACKAGE.name, "__init__"):
            files[".".join(parts)] = path
    return files


def executed_modules(importer: str, imported: str, modules: set[str]) -> set[str]:
    """What `import imported` runs when `importer` says it: the module itself, and the init of every
    sub-package on its path that `importer` does not belong to (its own package's init runs first)."""
    found = {imported} if imported in modules else set()
    own_package = importer.rsplit(".", 1)[0]
    parts = imported.split(".")
    for end in range(2, len(parts) + 1):
        package = ".".join(parts[:end])
        init = f"{package}.__init__"
        if init in modules and not (own_package + ".").startswith(package + "."):
            found.add(init)
    return found - {importer}


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules `name` runs through imports anywhere in its file: at the top, inside functions,
    or by name (a string that is exactly a module's name, e.g. a registry entry loaded with `importlib`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(name.split(".")[: -node.level] + ([base] if base else []))
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            candidates = [node.value]
        else:
            continue
        for candidate in candidates:
            found |= executed_modules(name, candidate, modules)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path `a -> b -> ... -> a`, or `None` (depth-first search, three colours)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                return path[path.index(successor) :] + [successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_relative_string_and_package_imports(tmp_path):
    source = (
        "from hf_ad.data.histories import load_histories\n"
        "def f():\n    from hf_ad import training\n    from . import cards\n"
        'LAZY = {"x": "hf_ad.sources.q_learning"}\n'
    )
    (tmp_path / "m.py").write_text(source)
    modules = {"hf_ad.training", "hf_ad.cards", "hf_ad.sources.q_learning", "hf_ad.data.histories"}
    modules |= {"hf_ad.data.__init__", "hf_ad.m"}
    expected = modules - {"hf_ad.m"}
    assert imported_modules("hf_ad.m", tmp_path / "m.py", modules) == expected
    # Inside its own package, a module does not run the package's init again.
    assert executed_modules("hf_ad.data.generate", "hf_ad.data.histories", modules) == {
        "hf_ad.data.histories"
    }


def test_no_module_imports_a_module_that_imports_it_back():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_nothing_in_the_package_imports_the_cli():
    """Only `python -m hf_ad` (`hf_ad/__main__.py`, the CLI's own entry point like the `hf-ad` script) may."""
    graph = import_graph()
    assert "hf_ad.cli" in graph["hf_ad.__main__"]
    importers = [
        name for name, imports in graph.items() if "hf_ad.cli" in imports and name != "hf_ad.__main__"
    ]
    assert importers == [], f"{importers} import hf_ad.cli; the CLI is the top layer"


SHIPPED_MODELS = sorted(path.parent.name for path in ROOT.glob("pretrained/*/config.json"))
SHIPPED_CODE = [
    (folder, file.name)
    for folder in SHIPPED_MODELS
    for file in sorted((ROOT / "pretrained" / folder).glob("*.py"))
]


@pytest.mark.parametrize(("folder", "file"), SHIPPED_CODE)
def test_shipped_remote_code_is_the_packages(folder, file):
    shipped = ROOT / "pretrained" / folder / file
    assert shipped.read_bytes() == (PACKAGE / file).read_bytes(), (
        f"{shipped.relative_to(ROOT)} differs from hf_ad/{file}: copy the package's file into the folder "
        "(the folder's trust_remote_code users run the copy)"
    )


def relative_imports(file: str) -> set[str]:
    """The package files `file` imports relatively, and theirs: what remote code must ship beside it."""
    needed, todo = set(), [file]
    while todo:
        current = todo.pop()
        needed.add(current)
        for node in ast.walk(ast.parse((PACKAGE / current).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level and f"{node.module}.py" not in needed:
                todo.append(f"{node.module}.py")
    return needed


@pytest.mark.parametrize("folder", SHIPPED_MODELS)
def test_shipped_folders_hold_the_remote_code_their_config_names(folder):
    """Every module of `auto_map` and `custom_pipelines` in config.json, and what it imports relatively."""
    config = json.loads((ROOT / "pretrained" / folder / "config.json").read_text())
    references = [*config.get("auto_map", {}).values()]
    references += [pipeline["impl"] for pipeline in config.get("custom_pipelines", {}).values()]
    assert references, f"pretrained/{folder}/config.json names no remote code"
    needed = set().union(*(relative_imports(reference.split(".")[0] + ".py") for reference in references))
    shipped = {file for name, file in SHIPPED_CODE if name == folder}
    assert needed <= shipped, f"pretrained/{folder} lacks {sorted(needed - shipped)}"


@pytest.mark.parametrize("file", REMOTE_CODE)
def test_remote_code_imports_only_shipped_files_relatively(file):
    """transformers fetches the files a remote module imports relatively; an absolute `hf_ad` import would
    fail where hf_ad is not installed, unless it is optional (inside `try`, as rollout.py's envs)."""
    tree = ast.parse((PACKAGE / file).read_text())
    optional = {
        id(node) for block in ast.walk(tree) if isinstance(block, ast.Try) for node in ast.walk(block)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert f"{node.module}.py" in REMOTE_CODE, f"{file} imports .{node.module}, which is not shipped"
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        if id(node) not in optional:
            assert not [name for name in names if name.split(".")[0] == "hf_ad"], (
                f"{file}: {ast.unparse(node)}"
            )
