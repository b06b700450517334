"""Code health rules the project keeps (issues 17 and 22): short functions, at most five positional parameters,
typed public signatures, ruff and mypy clean, and a repository that stands alone (nothing refers to files
outside it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60
MAX_POSITIONAL = 5


#: The only packages a planner module may import inside a function: heavy third-party ones, loaded on first use so
#: that `planner --help` and the cost model start without them (issue 22, item 4). An internal import inside a
#: function is allowed only where it defers one of these: the imported planner module loads one at its top (directly or
#: through its own imports) and the importing module does not.
HEAVY_THIRD_PARTY = ("torch", "transformers", "huggingface_hub", "ortools", "matplotlib", "httpx", "uvicorn")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name an `from ... import` names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules an import statement loads: its target and, for `from pkg import name`, pkg.name when that is
    a module."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    target = _resolve(module, is_package, node)
    return [target] + [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: the module body and its `if`/`try` blocks, not functions,
    not `if TYPE_CHECKING:`."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)) and not _is_type_checking(node):
            for name in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, name, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)
    return out


def _function_imports(tree: ast.Module):
    """(function name, import statement) for every import inside a function body."""
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield fn.name, node


def _parsed() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text())) for p in _sources()}


def import_graph(modules: dict[str, tuple[Path, ast.Module]]):
    """Module -> module edges of the imports that run at import time, planner modules only; an edge also goes to
    each package a target lies in (importing planner.solve.options runs planner/solve/__init__.py), except the
    importer's own packages (already being imported)."""
    known = set(modules)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, (path, tree) in modules.items():
        is_package = path.name == "__init__.py"
        own = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")) + 1)}
        for node in _top_level_imports(tree):
            for target in _imported(name, is_package, node, known):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    up = ".".join(parts[:i])
                    if up in known and up not in own:
                        graph.add_edge(name, up)
    return graph


def _heavy_modules(modules: dict[str, tuple[Path, ast.Module]]) -> set[str]:
    """Planner modules that load a heavy third-party package when imported (themselves or through their imports)."""
    graph = import_graph(modules)
    direct = {
        name
        for name, (path, tree) in modules.items()
        for node in _top_level_imports(tree)
        for target in _imported(name, path.name == "__init__.py", node, set())
        if target.split(".")[0] in HEAVY_THIRD_PARTY
    }
    return direct | {m for m in graph if nx.descendants(graph, m) & direct}


def _function_level_internal_imports(modules: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    heavy = _heavy_modules(modules)
    found = []
    for name, (path, tree) in modules.items():
        for fn, node in _function_imports(tree):
            targets = _imported(name, path.name == "__init__.py", node, set(modules))
            internal = [t for t in targets if t.split(".")[0] == "planner"]
            if internal and (name in heavy or not any(t in heavy for t in internal)):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} in {fn}: {ast.unparse(node)}")
    return found


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


def _is_typer_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A command of the CLI: typer names its options from the parameters, so they stay positional-or-keyword."""
    names = {ast.unparse(d).split("(")[0] for d in fn.decorator_list}
    return "cli_errors" in names or any(n.endswith(".command") or n.endswith(".callback") for n in names)


def _positional(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return len([a for a in fn.args.posonlyargs + fn.args.args if a.arg not in ("self", "cls")])


def test_no_function_takes_more_than_5_positional_parameters():
    """Past five, parameters are keyword-only (or grouped in an options object), outside typer commands."""
    many = []
    for path in _sources():
        where = str(path.relative_to(REPO))
        for fn, _ in _functions(ast.parse(path.read_text())):
            if _positional(fn) > MAX_POSITIONAL and not _is_typer_command(fn):
                many.append(f"{where}:{fn.lineno} {fn.name} ({_positional(fn)} positional)")
    assert not many, many


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
    six = ast.parse(
        "def six(a, b, c, d, e, f): pass\n\ndef ok(a, b, c, d, e, *, f): pass\n\n"
        "@cli_errors\ndef cmd(a, b, c, d, e, f): pass\n"
    )
    counts = {fn.name: (_positional(fn), _is_typer_command(fn)) for fn, _ in _functions(six)}
    assert counts == {"six": (6, False), "ok": (5, False), "cmd": (6, True)}


def test_internal_imports_are_at_module_top():
    """A module's header tells what it depends on: no planner import inside a function, except one that defers a
    heavy third-party package (HEAVY_THIRD_PARTY) from a module that does not load it already."""
    found = _function_level_internal_imports(_parsed())
    assert not found, found


def test_no_import_cycle():
    """The imports that run at import time form no cycle (a shared piece lives in a module below both users)."""
    cycles = list(nx.simple_cycles(import_graph(_parsed())))
    assert not cycles, cycles


def test_the_command_line_starts_without_heavy_packages():
    """What HEAVY_THIRD_PARTY is for: `planner --help` and the cost model load none of those packages."""
    modules = _parsed()
    heavy = _heavy_modules(modules)
    assert {"planner.validate.model", "planner.validate.common"} <= heavy  # torch at their top: the check sees it
    assert not heavy & {"planner.cli", "planner.cost.estimate", "planner.solve", "planner.validate.runner"}


def _fake(**sources: str) -> dict[str, tuple[Path, ast.Module]]:
    return {f"planner.{name}": (REPO / "planner" / f"{name}.py", ast.parse(text)) for name, text in sources.items()}


def test_the_import_checks_can_fail():
    """A function-level internal import is found, in a torch-loading module too; a TYPE_CHECKING import and a
    lazy import of a torch-loading module are not; a cycle through a function-free import is."""
    modules = _fake(
        a="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from planner.b import B\n"
        "def f():\n    from planner.b import g\n    from planner.t import T\n",
        b="import planner.c\n",
        c="from planner import b\n",
        t="import torch\ndef h():\n    from planner.t2 import X\n",
        t2="import torch\n",
    )
    found = [line.split(": ", 1)[1] for line in _function_level_internal_imports(modules)]
    assert found == ["from planner.b import g", "from planner.t2 import X"]
    assert sorted(map(sorted, nx.simple_cycles(import_graph(modules)))) == [["planner.b", "planner.c"]]
    assert _heavy_modules(modules) == {"planner.t", "planner.t2"}


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
    from planner.cost.constants import Constants  # here, not at the top: the import checks above only parse

    doc = (REPO / "docs" / "calibration.md").read_text()
    missing = [name for name in Constants.model_fields if f"`{name}`" not in doc]
    assert not missing, missing
    for page in ("architecture.md", "cost-model.md", "solver.md", "calibration.md"):
        assert (REPO / "docs" / page).stat().st_size > 2000, page


def test_ruff_and_mypy_are_clean():
    """The linter, the formatter and the type checker as configured in pyproject.toml (.ci/run runs them too)."""
    bin_dir = Path(sys.executable).parent
    ruff = subprocess.run([str(bin_dir / "ruff"), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout[-3000:]
    fmt = subprocess.run([str(bin_dir / "ruff"), "format", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout[-3000:]
    mypy = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert mypy.returncode == 0, mypy.stdout[-3000:]


def test_no_test_counts_any_exception_as_the_expected_one():
    """A bare Exception in pytest.raises agrees with any crash (issue 22): a test names the error it expects."""
    loose = [
        f"{p.relative_to(REPO)}:{n}"
        for p in sorted((REPO / "tests").rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "raises(" + "Exception)" in line or "raises(" + "BaseException)" in line
    ]
    assert not loose, loose
