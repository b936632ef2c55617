"""The tree's import rules (docs/architecture.md, "The layering rules"): worker code and sweep definitions (the
shipped ones in search_spaces/ and those behind results/) never import the driver
(`orchestrator/`), and no module imports itself back through others. Imports inside functions count too: they run
on the same machines, just later."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "trainables", "search_spaces")
BELOW_THE_DRIVER = ("trainables", "search_spaces")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (relative imports resolved)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: None if path.name == "__init__.py" else -1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                          for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def test_workers_and_search_spaces_never_import_the_driver():
    up = sorted(f"{source} -> {target}" for source, targets in _graph().items() for target in targets
                if source.startswith(BELOW_THE_DRIVER) and target.startswith("orchestrator"))
    assert up == [], "imports back up into orchestrator/: " + ", ".join(up)


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(" <-> ".join(sorted(component)))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(cycles)


def test_the_rules_see_the_imports():
    """The graph is not empty by mistake: a known arrow is in it."""
    assert "trainables.options" in _graph()["search_spaces.base"]


def test_the_sweep_definitions_behind_results_never_import_the_driver():
    modules = _modules()
    up = sorted(f"{path.relative_to(ROOT)} -> {target}" for path in sorted((ROOT / "results").rglob("*_space.py"))
                for target in _imported(path.stem, path, modules) if target.startswith("orchestrator"))
    assert up == [], "sweep definitions in results/ import the driver: " + ", ".join(up)
