"""Docs true to the code (issue 22): every path and command a doc names exists, every option the README gives a
command is an option of that command, every module.attribute a doc names resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from planner.hardware import shipped_topologies

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: Paths a doc names: inside backticks or a markdown link, starting at a top-level folder of the repository.
PATH = re.compile(r"(?:`|\]\()((?:planner|docs|benchmarks|scripts|tests|examples|topologies|models|notes)/[\w./-]*\w)")
#: A command line in a doc: `planner CMD ...` (in a code block or backticks).
COMMAND = re.compile(r"(?:^|`|\$ |&& )(?:\.venv/bin/)?planner ([a-z][\w-]*)((?: [^`\n#]*)?)", re.M)
FLAG = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")


def _click_app():
    import typer

    from planner.cli import app

    return typer.main.get_command(app)


def _command(group, words: list[str]):
    """The click command the words name (a group's subcommand when the first is a group), and the words left."""
    cmd = group.commands.get(words[0]) if words else None
    if cmd is not None and hasattr(cmd, "commands") and len(words) > 1 and words[1] in cmd.commands:
        return cmd.commands[words[1]]
    return cmd


def _options(cmd) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def _doc_lines():
    for doc in DOCS:
        for m in COMMAND.finditer(doc.read_text()):
            yield doc.name, m.group(1), m.group(2)


def test_every_path_a_doc_or_docstring_names_exists():
    texts = {d: d.read_text() for d in DOCS}
    texts.update({p: p.read_text() for p in sorted((REPO / "planner").rglob("*.py"))})
    missing = []
    for where, text in texts.items():
        for m in PATH.finditer(text):
            path = m.group(1).rstrip(".")
            if "*" not in path and not (REPO / path).exists():
                missing.append(f"{where.relative_to(REPO)}: {path}")
    assert not missing, missing


def test_every_command_a_doc_names_exists_with_the_options_it_gives():
    app = _click_app()
    wrong = []
    for doc, first, rest in _doc_lines():
        words = [first, *rest.split()]
        cmd = _command(app, words)
        if cmd is None:
            wrong.append(f"{doc}: planner {first}")
            continue
        unknown = set(FLAG.findall(rest)) - _options(cmd) - {"--help"}
        if unknown:
            wrong.append(f"{doc}: planner {' '.join(words[:2])}: {sorted(unknown)}")
    assert not wrong, wrong


def test_every_option_the_readme_names_is_an_option_of_some_command():
    """Options in prose ('Options: `--gpus N` ...') as well as in command lines."""
    app = _click_app()
    known = {"--help", "--debug"}
    stack = [app]
    while stack:
        cmd = stack.pop()
        known |= _options(cmd)
        stack += list(getattr(cmd, "commands", {}).values())
    readme = (REPO / "README.md").read_text()
    # setup.sh's flag, benchmarks/fit_serving.py's --cv (checked below against its parser's text) and the engines'
    # own flags the README quotes (vLLM, SGLang, TensorRT-LLM, torchrun)
    assert '"--cv"' in (REPO / "benchmarks" / "fit_serving.py").read_text()
    outside = {
        "--test",
        "--cv",
        "--load-format",
        "--skip-tokenizer-init",
        "--cpu-offload-gb",
        "--max-num-seqs",
        "--max-running-requests",
        "--max_batch_size",
        "--nnodes",
        "--disaggregation-mode",
        "--disaggregation-transfer-backend",
        "--kv-transfer-config",
        "--pd-disaggregation",
    }
    named = set(re.findall(r"`[^`\n]*?(--[a-z][\w-]*)", readme))
    assert not (named - known - outside), sorted(named - known - outside)


def _modules(cell: str) -> list[str]:
    """The modules a packages-table row names (`planner/report/`, `planner/plan.py`, `plan_io.py`), with a
    package's submodules."""
    import pkgutil

    out = []
    for path in re.findall(r"`([\w/.]+)`", cell):
        name = ("planner/" + path if not path.startswith("planner") else path).removesuffix(".py").rstrip("/")
        module = importlib.import_module(name.replace("/", "."))
        out.append(module.__name__)
        if hasattr(module, "__path__"):
            out += [f"{module.__name__}.{m.name}" for m in pkgutil.iter_modules(module.__path__)]
    return out


def _resolves(name: str, modules: list[str]) -> bool:
    name = name.replace(":", ".")
    for base in ["", *modules]:
        parts = (f"{base}.{name}" if base else name).split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for part in parts[cut:]:
                obj = getattr(obj, part, None)
            if obj is not None:
                return True
            break
    return False


def test_every_entry_point_architecture_names_resolves():
    """The packages table of docs/architecture.md: each entry point is an attribute of the row's modules."""
    bad = []
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`planner/"):
            continue
        modules = _modules(cells[1])
        bad += [f"{cells[1].strip()}: {n}" for n in re.findall(r"`([\w.:]+)`", cells[3]) if not _resolves(n, modules)]
    assert not bad, bad


def test_the_readme_lists_every_shipped_topology():
    # the "Shipped (`planner topology list`)" sentence: a topology added to topologies/ must be named there too
    text = (REPO / "README.md").read_text()
    listed = text[text.index("Shipped (`planner topology list`)") :].split(". A topology")[0]
    assert sorted(t for t in shipped_topologies() if f"`{t}`" not in listed) == []
