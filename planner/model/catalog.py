"""The model catalog, resolving a model argument to a config, and the cached trace.

A model argument resolves, in order: a catalog name or alias; a path to a JSON config file (any
name) or a directory holding `config.json`; a Hugging Face hub id (`owner/name`), fetched with
`huggingface_hub` (config only, never weights). `load_profile` returns the traced `ModelProfile`,
from the disk cache when the same config was traced before (a warm call imports no torch).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from planner.errors import ModelNotFoundError
from planner.files import parse_json, read_text
from planner.model.config_check import check_model_config
from planner.model.layergraph import PROFILE_VERSION, ModelProfile
from planner.model.trace import trace_config
from planner.resources import models_dir


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    file: str
    hub_id: str
    aliases: tuple[str, ...]
    dtype: str = "bf16"


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    source: str
    config: dict


@lru_cache(maxsize=1)
def catalog() -> dict[str, CatalogEntry]:
    raw = yaml.safe_load((models_dir() / "catalog.yaml").read_text())
    return {
        name: CatalogEntry(
            name, entry["file"], entry["hub_id"], tuple(entry.get("aliases", [])), entry.get("dtype", "bf16")
        )
        for name, entry in raw.items()
    }


def _catalog_lookup(arg: str) -> CatalogEntry | None:
    key = arg.strip().lower()
    for entry in catalog().values():
        names = (entry.name, entry.hub_id, *entry.aliases)
        if key in (n.lower() for n in names):
            return entry
    return None


def native_weight_dtype(model: str) -> str:
    """The weight dtype a model's checkpoint ships in: the catalog's `dtype`, else the config's
    `quantization_config` (fp8, mxfp4), else bf16. The default of every command's `--weight-dtype`."""
    entry = _catalog_lookup(model)
    if entry is not None:
        return entry.dtype
    try:
        config = resolve(model).config
    except Exception:  # noqa: BLE001 - an unresolvable model is reported where it is loaded
        return "bf16"
    return config_weight_dtype(config)


def config_weight_dtype(config: dict) -> str:
    """fp8 or mxfp4 when a config's quantization_config says so, else bf16."""
    quant = (config.get("quantization_config") or {}).get("quant_method", "")
    return {"fp8": "fp8", "mxfp4": "mxfp4"}.get(str(quant).lower(), "bf16")


def read_config_file(path: Path) -> dict:
    """Read and check a config.json: the file and the offending field are named on failure."""
    config = parse_json(read_text(path, "the model config"), str(path))
    check_config(config, str(path))
    return config


def check_config(config: object, origin: str) -> None:
    check_model_config(config, origin)


def _hub_reachable(timeout_s: float = 2.0) -> str | None:
    """None when the hub answers a TCP connection, else why not (offline machines fail in seconds, not after
    huggingface_hub's retries)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{endpoint.hostname} is not reachable ({exc.strerror or exc})"


def _fetch_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise ModelNotFoundError(f"'{repo_id}' looks like a hub id, but huggingface_hub is not installed") from None
    offline = _hub_reachable()
    if offline is not None:
        raise ModelNotFoundError(
            f"model '{repo_id}' is not in the catalog ({', '.join(catalog_names())}) and the "
            f"Hugging Face hub cannot be asked: {offline}; pass a path to its config.json"
        )
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename="config.json"))
    except Exception as exc:  # network, auth, missing repo: one message for the user
        reason = type(exc).__name__
        hint = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ModelNotFoundError(
            f"model '{repo_id}' is not in the catalog ({', '.join(catalog_names())}) and its config.json could not be "
            f"fetched from the Hugging Face hub ({reason}{': ' + hint if hint else ''}); offline, pass a path to its config.json"
        ) from None


def catalog_names() -> list[str]:
    return [alias for entry in catalog().values() for alias in (entry.aliases[0], entry.name)]


def resolve(arg: str) -> ResolvedModel:
    """Turn a model argument into its name, where it came from, and its checked config dict."""
    entry = _catalog_lookup(arg)
    if entry is not None:
        path = models_dir() / entry.file
        return ResolvedModel(entry.name, f"catalog:{entry.name}", read_config_file(path))
    path = Path(arg).expanduser()
    try:
        path.is_dir()
    except (OSError, ValueError) as exc:  # a name longer than the file-name limit, a NUL byte
        raise ModelNotFoundError(
            f"model '{arg[:60]}...' ({len(arg)} characters): not in the catalog and not a usable "
            f"path ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: the directory holds no config.json")
        return ResolvedModel(path.resolve().name, str(path / "config.json"), read_config_file(path / "config.json"))
    if path.is_file():
        config = read_config_file(path)
        return ResolvedModel(_file_model_name(path, config), str(path), config)
    parts = arg.split("/")
    if len(parts) == 2 and all(parts) and not arg.endswith((".json", ".yaml")):
        fetched = _fetch_from_hub(arg)
        return ResolvedModel(arg, f"hub:{arg}", read_config_file(fetched))
    raise ModelNotFoundError(
        f"unknown model '{arg}': not in the catalog ({', '.join(catalog_names())}), not a config file, "
        "and not a hub id (owner/name)"
    )


def _file_model_name(path: Path, config: dict) -> str:
    """A config file's model name: its stem (llama.json), or for a `config.json` its folder's name (a checkpoint's
    folder), else the config's `_name_or_path`, else its architecture: never "config"."""
    if path.name != "config.json":
        return path.stem
    folder = path.resolve().parent.name
    named = str(config.get("_name_or_path") or "").rstrip("/").split("/")[-1]
    arch = (config.get("architectures") or [""])[0] if isinstance(config.get("architectures"), list) else ""
    return folder or named or str(arch or "model")


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"v{PROFILE_VERSION}:{canonical}".encode()).hexdigest()[:16]


def cache_dir() -> Path:
    root = os.environ.get("PLANNER_CACHE_DIR")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "planner"
    return base / "traces"


def load_profile(arg: str, *, use_cache: bool = True) -> ModelProfile:
    """Resolve `arg` and return its traced profile, tracing (and caching) on first use."""
    resolved = resolve(arg)
    digest = config_hash(resolved.config)
    path = cache_dir() / f"{digest}.json"
    if use_cache and path.is_file():
        try:
            profile = ModelProfile.model_validate_json(path.read_text())
            return profile.model_copy(update={"name": resolved.name, "source": resolved.source})
        except ValueError:
            pass  # a stale or corrupt cache entry: trace again and overwrite it

    profile = trace_config(resolved.config, name=resolved.name, source=resolved.source, config_hash=digest)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(profile.model_dump_json())
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache is not an error; the next call traces again
    return profile
