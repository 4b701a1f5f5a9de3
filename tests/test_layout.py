"""The layout the README's Layout section describes: a typed core that imports no database,
web framework or scheduler; no import cycle between packages; endpoints without queries."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "driftwatch"
FORBIDDEN_IN_CORE = ("sqlalchemy", "fastapi", "starlette", "apscheduler", "psycopg", "uvicorn")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "driftwatch":  # from driftwatch import metrics
                names.update(f"driftwatch.{alias.name}" for alias in node.names)
    return names


def _unit(path: Path) -> str:
    """A package of driftwatch, or a top-level module of it (``config``, ``cli``, ...)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        own = _unit(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "driftwatch" and len(parts) > 1 and parts[1] != own:
                edges[own].add(parts[1])
    return edges


@pytest.mark.parametrize("path", sorted(PACKAGE.joinpath("core").glob("*.py")), ids=str)
def test_the_core_imports_no_database_web_or_scheduler(path: Path) -> None:
    for name in _imports(path):
        root = name.split(".")[0]
        assert root not in FORBIDDEN_IN_CORE, f"{path.name} imports {name}"
        if root == "driftwatch":
            assert name.startswith("driftwatch.core"), f"{path.name} imports {name}"


def test_no_two_packages_import_each_other_even_through_others() -> None:
    edges = _graph()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for following in edges.get(stack.pop(), set()):
                if following not in seen:
                    seen.add(following)
                    stack.append(following)
        return seen

    cycles = sorted(f"{a} -> {b}" for a in edges for b in edges[a] if a in reachable(b))
    assert cycles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("endpoints.py")), ids=str)
def test_endpoints_hold_no_queries(path: Path) -> None:
    """Queries live in each package's repository; endpoints call services."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "session":
                assert node.func.attr not in {"execute", "scalar", "scalars", "get", "query"}, (
                    f"{path.name}:{node.lineno} session.{node.func.attr}"
                )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"select", "update", "delete", "insert"}, (
                f"{path.name}:{node.lineno} {node.func.id}()"
            )
