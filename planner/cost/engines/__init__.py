"""Engine profiles: what differs between vLLM, SGLang and TensorRT-LLM, one module each behind a factory.

`engine_profile(name)` returns the profile (seeds in the engine's module, fitted values from `fitted.yaml`);
`resolve_constants(c, engine)` gives the constants a prediction for that engine uses: the engine's values over
`c`, except the fields a calibration profile set (`Constants.calibrated`), which always win. Resolving twice for
the same engine changes nothing. `bands(engine, moe, metric)` is the relative error band that class of
prediction earned in leave-one-publisher-out cross-validation (`bands.yaml`, written by
`python benchmarks/fit_serving.py --cv`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from pathlib import Path

import yaml

from planner.cost.constants import Constants
from planner.cost.engines.base import EngineProfile
from planner.errors import ConfigError

ENGINES = ("vllm", "sglang", "trtllm")
HERE = Path(__file__).resolve().parent
FITTED_FILE = HERE / "fitted.yaml"
BANDS_FILE = HERE / "bands.yaml"


def _yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


@lru_cache(maxsize=None)
def engine_profile(name: str) -> EngineProfile:
    """The engine's profile: its module's seeds, overridden by the fitted values of fitted.yaml."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}: one of {', '.join(ENGINES)}")
    seed: EngineProfile = import_module(f"planner.cost.engines.{name}").PROFILE
    fitted = _yaml(FITTED_FILE)
    shared, own = fitted.get("shared", {}), fitted.get(name, {})
    source = fitted.get("source", "benchmarks/fit_serving.py --write")
    values = {**seed.constants, **shared, **own}
    sources = {**seed.sources, **{k: f"fitted ({source})" for k in (*shared, *own)}}
    return seed.model_copy(update={"constants": values, "sources": sources})


@lru_cache(maxsize=256)
def _resolve(c: Constants, engine: str) -> Constants:
    values = {k: v for k, v in engine_profile(engine).constants.items() if k not in c.calibrated}
    return c.model_copy(update={**values, "engine": engine})


def resolve_constants(c: Constants, engine: str) -> Constants:
    """`c` with the engine's constants applied (fields a calibration profile set stay as they are)."""
    if c.engine == engine:
        return c
    return _resolve(c, engine)


@lru_cache(maxsize=1)
def _bands() -> dict:
    return _yaml(BANDS_FILE).get("bands", {})


def band(engine: str, moe: bool, metric: str) -> float | None:
    """Relative error band (median |error| held out) of `metric` (tpot, ttft, tokens, max_tokens) for this class."""
    value = _bands().get(engine, {}).get("moe" if moe else "dense", {}).get(metric)
    return None if value is None else float(value)


__all__ = ["ENGINES", "EngineProfile", "band", "engine_profile", "resolve_constants"]
