"""Code health rules the project keeps (issue 17): short functions, typed public signatures, and a
repository that stands alone (nothing refers to files outside it)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60


def _functions(tree: ast.Module):
    """(function, is_public_api): module-level functions and methods of module-level classes are API;
    nested helpers are not."""
    api = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            api.add(node)
        elif isinstance(node, ast.ClassDef):
            api.update(n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, node in api and not node.name.startswith("_")


def _sources():
    return sorted((REPO / "planner").rglob("*.py"))


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in _sources():
        for fn, _ in _functions(ast.parse(path.read_text())):
            lines = fn.end_lineno - fn.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(REPO)}:{fn.lineno} {fn.name} ({lines} lines)")
    assert not long, long


def test_every_public_signature_is_typed():
    untyped = []
    for path in _sources():
        for fn, public in _functions(ast.parse(path.read_text())):
            if not public:
                continue
            args = [a for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]
            args += [a for a in (fn.args.vararg, fn.args.kwarg) if a is not None]
            if any(a.annotation is None for a in args) or fn.returns is None:
                untyped.append(f"{path.relative_to(REPO)}:{fn.lineno} {fn.name}")
    assert not untyped, untyped


def test_the_checks_above_can_fail(tmp_path):
    """The rules catch what they are for: a long function and an untyped one."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def long():\n{body}\n\ndef untyped(a):\n    return a\n")
    found = {fn.name: (fn.end_lineno - fn.lineno + 1, public, fn.returns) for fn, public in _functions(tree)}
    assert found["long"][0] > MAX_FUNCTION_LINES and found["untyped"][2] is None


def test_nothing_refers_outside_the_repository():
    """Docs, comments and data point at files inside the repository (docs/reference/ holds the sources)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = REPO / name
        if path.suffix not in (".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh", ".csv", "") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for needle in ("../shared", "shared/reference", "shared folder", "DESIGN.md"):
            if needle in text and name != "tests/test_code_health.py":
                offenders.append(f"{name}: {needle}")
    assert not offenders, offenders


def test_every_constant_is_documented_with_its_source():
    """docs/calibration.md names every field of Constants (a new constant without a source fails here)."""
    from planner.cost.constants import Constants

    doc = (REPO / "docs" / "calibration.md").read_text()
    missing = [name for name in Constants.model_fields if f"`{name}`" not in doc]
    assert not missing, missing
    for page in ("architecture.md", "cost-model.md", "solver.md", "calibration.md"):
        assert (REPO / "docs" / page).stat().st_size > 2000, page
