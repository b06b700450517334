"""Where the shipped model configs and topologies live, for an editable checkout and an installed wheel.

pyproject.toml maps the repository's `models/` and `topologies/` folders into the package as
`planner.shipped_models` and `planner.shipped_topologies`, so importlib.resources finds them
either way.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder(package: str, repo_folder: str) -> Path:
    try:
        path = Path(str(resources.files(package)))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    # Running from a source checkout without installing: the folder beside the package.
    return Path(__file__).resolve().parent.parent / repo_folder


def models_dir() -> Path:
    return _folder("planner.shipped_models", "models")


def topologies_dir() -> Path:
    return _folder("planner.shipped_topologies", "topologies")
