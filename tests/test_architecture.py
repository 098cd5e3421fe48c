"""The map in docs/architecture.md holds: imports run one way (data -> models -> tuner; inside tuner, contract ->
config -> train, tracking -> search -> commands -> cli), and no module imports itself round a cycle."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "models", "tuner")
# Lower layers first; a module may import its own layer's siblings only where the layer is one package.
LAYERS = [("data",), ("models",), ("tuner.contract",), ("tuner.config",), ("tuner.train", "tuner.tracking"),
          ("tuner.search",), ("tuner.commands",), ("tuner.cli", "tuner.__main__")]


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports at any depth of its code (function-level imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _layer(name: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    return -1  # package roots (tuner, data's __init__) stand outside the layering


def test_no_import_runs_back_up():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        for target in _imports(name, path, set(modules)):
            if _layer(name) >= 0 and _layer(target) > _layer(name):
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_there_are_no_import_cycles():
    modules = _modules()
    # Package roots re-export their members; importing the package is importing those members.
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open" and not (nxt in node.split(".") or node.startswith(nxt + ".")):
                cycles.append(" -> ".join([*trail[trail.index(nxt):], nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
