"""The package's shape, as issue #13 states it: layers without import cycles, short functions, short files."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400
MAX_TOP_LEVEL_MODULES = 12


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every fastdream/bench module `path` imports anywhere (functions included), resolved to a known file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(_module_name(path))
    return found


def _graph() -> dict[str, set[str]]:
    files = _python_files("fastdream") + _python_files("bench")
    known = {_module_name(p) for p in files}
    graph = {}
    for p in files:
        # a package's __init__ is imported on the way to any of its modules: not an edge of its own
        graph[_module_name(p)] = {m for m in _imported_modules(p, known)
                                  if not _module_name(p).startswith(m + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_counting_imports_inside_functions():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("folder", ["fastdream", "bench"])
def test_functions_are_short(folder):
    long = []
    for p in _python_files(folder):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines"


@pytest.mark.parametrize("folder", ["fastdream", "bench"])
def test_files_are_short(folder):
    long = [f"{p.relative_to(ROOT)} ({n})" for p in _python_files(folder)
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert long == [], f"files over {MAX_FILE_LINES} lines"


def test_top_level_is_small_and_subpackages_say_what_they_own():
    top = sorted(p.name for p in (ROOT / "fastdream").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    for init in (ROOT / "fastdream").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        first = doc.splitlines()[0] if doc else ""
        assert first.endswith("."), f"{init.relative_to(ROOT)}: its docstring's first line must say what it owns"
