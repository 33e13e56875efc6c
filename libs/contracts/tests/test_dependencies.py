"""`contracts` is shared by every service and by outsiders: it may import only pydantic and
the standard library (import-linter forbids the heavy ones; this checks the whole rule)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import contracts

ALLOWED = set(sys.stdlib_module_names) | {"pydantic", "contracts", "__future__"}


def test_contracts_imports_only_pydantic_and_the_standard_library() -> None:
    root = Path(contracts.__file__).parent
    found: dict[str, str] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found[name.split(".")[0]] = path.name
    assert {k: v for k, v in found.items() if k not in ALLOWED} == {}
    assert "pydantic" in found
