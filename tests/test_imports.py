"""How shoprel's modules import each other: no cycle, and no torch for loading a config."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import shoprel

PACKAGE_ROOT = Path(shoprel.__file__).parent


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The shoprel modules ``path`` imports anywhere in its body (a package's ``__init__`` is a
    module of its own; ``from a import b`` counts ``a.b`` where it is a module)."""
    package = name.split(".")
    if path.name != "__init__.py":
        package = package[:-1]  # relative imports start from the module's package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            parts = [node.module] if node.module else []
            if node.level:
                parts = package[: len(package) - node.level + 1] + parts
            base = ".".join(parts)
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return (found & known) - {name}


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: imported_modules(path, name, set(files)) for name, path in files.items()}


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "shoprel.teacher.judge_io" in graph["shoprel.teacher.train"]  # a lazy import
    assert "shoprel.scoring" in graph["shoprel.teacher.scorer"]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_through_a_lazy_relative_import_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    assert set(find_cycle(import_graph(pkg))) == {"pkg.a", "pkg.sub.b"}
    (pkg / "sub" / "b.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph(pkg)) == []


def test_config_loading_imports_no_torch() -> None:
    """``shoprel pipeline --show-config`` and config checks stay fast: no torch, no transformers."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from shoprel.pipeline.config import config_yaml, load_pipeline_config\n"
        "configs = Path(sys.argv[1])\n"
        "assert config_yaml(load_pipeline_config(configs / 'quickstart.yaml', None))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    configs = PACKAGE_ROOT / "configs"
    done = subprocess.run(
        [sys.executable, "-c", code, str(configs)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in graph.get(todo.pop(), set()) - seen:
            seen.add(name)
            todo.append(name)
    return seen


def test_no_judge_stage_imports_another() -> None:
    """Each stage can be read and changed alone; only the orchestrator knows their order."""
    graph = import_graph()
    stages = {f"shoprel.teacher.{name}" for name in ("select", "sft", "cot", "dpo")}
    assert stages <= set(graph)
    for stage in sorted(stages):
        assert not (reachable(graph, stage) & (stages - {stage})), stage
    assert "shoprel.teacher.train" not in set().union(*(reachable(graph, s) for s in stages))


def test_reachable_follows_imports_through_other_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}
    assert reachable(graph, "a") == {"b", "c"} and reachable(graph, "c") == set()
