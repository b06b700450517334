"""Launch scripts for a disaggregated plan (Plan `pools`): one server per prefill and decode instance and node,
plus the piece that sends each request to a prefill instance, then to a decode instance.

Each instance is rendered by its engine's own module (planner.launch.sglang, planner.launch.vllm) as a one-replica
plan of its pool's layout on its GPUs, with the disaggregation flags appended; the flags are the engines' own,
read from their argument definitions:

- **SGLang** (python/sglang/srt/server_args.py): `--disaggregation-mode prefill|decode`,
  `--disaggregation-transfer-backend` (mooncake, nixl, ...), and for each prefill instance its
  `--disaggregation-bootstrap-port` (default 8998; one per instance on a node). The router is
  `python -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT ... --decode URL ...`.
- **vLLM** (vllm/config/kv_transfer.py, KVTransferConfig): `--kv-transfer-config` with `kv_connector`
  NixlConnector (or MooncakeConnector, or ExampleConnector for `shared-storage`: the KV through files under
  SHARED_STORAGE_PATH, which the decode instance finds by the prompt's tokens) and `kv_role` kv_both; each instance's NIXL side channel on its own
  port (VLLM_NIXL_SIDE_CHANNEL_PORT, default 5600). vLLM ships no router in the wheel: `vllm-disagg-proxy.py`,
  written here, sends each request to a prefill instance with `max_tokens` 1 and `kv_transfer_params`
  `do_remote_decode`, then to a decode instance with the `kv_transfer_params` the prefill answered.
"""

from __future__ import annotations

import json
import math
import re
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from planner.disagg.plan import Pool
from planner.errors import UnsupportedPlanError
from planner.launch.common import LaunchBundle, command, q, serving_limits
from planner.plan import Plan, Stage

if TYPE_CHECKING:
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile

#: SGLang's default bootstrap port (server_args.py disaggregation_bootstrap_port); prefill instance i takes + i.
SGLANG_BOOTSTRAP_PORT = 8998
#: vLLM's default NIXL side-channel port (vllm/envs.py VLLM_NIXL_SIDE_CHANNEL_PORT); instance k takes + k.
NIXL_SIDE_CHANNEL_PORT = 5600
DEFAULT_PORT = {"sglang": 30000, "vllm": 8000}
PROXY_FILE = "vllm-disagg-proxy.py"
#: What sends each request to a prefill instance, then to a decode instance, per engine.
FRONT = {"sglang": "router", "vllm": "proxy"}
#: vLLM's connector for each transfer backend (vllm/distributed/kv_transfer/kv_connector/factory.py).
VLLM_CONNECTOR = {"nixl": "NixlConnector", "mooncake": "MooncakeConnector", "shared-storage": "ExampleConnector"}
#: Where vLLM's ExampleConnector writes and reads the KV files (its `shared_storage_path`; it never deletes them):
#: a path every instance sees, here one host's.
SHARED_STORAGE_PATH = "/tmp/planner-kv"


def instance_plan(plan: Plan, pool: Pool, index: int, n_layers: int) -> Plan:
    """One instance of a pool as a one-replica plan of its layout on its GPUs, at its share of the load."""
    stage = Stage(layer_start=0, layer_end=n_layers, gpu_ids=pool.gpu_ids[index], tp=pool.tp, dp=pool.dp, ep=pool.ep)
    load = max(1, math.ceil(plan.prediction.concurrency / pool.instances))
    return plan.model_copy(
        update={
            "stages": [stage],
            "replicas": 1,
            "replica_gpu_ids": [],
            "pools": None,
            "serving": None,
            "prediction": plan.prediction.model_copy(update={"concurrency": load}),
        }
    )


def _node_var(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", node).upper() + "_ADDR"


def _address(topo: Topology, gpu: int, nodes: set[str]) -> str:
    """The host of the server on `gpu`: localhost on a one-node plan, else the node's address variable."""
    node = topo.gpu(gpu).node
    return "127.0.0.1" if len(nodes) == 1 else f"${{{_node_var(node)}:?set {_node_var(node)} to the IP of {node}}}"


def _flags(engine: str, role: str, *, index: int, backend: str, multi_node: bool) -> list[str]:
    if engine == "sglang":
        out = ["--disaggregation-mode", role, "--disaggregation-transfer-backend", backend]
        if role == "prefill":
            out += ["--disaggregation-bootstrap-port", str(SGLANG_BOOTSTRAP_PORT + index)]
        if multi_node:
            out += ["--host", "0.0.0.0"]  # the router on another node reaches it (SGLang listens on 127.0.0.1)
        return out
    return ["--kv-transfer-config", _kv_config(backend)]


def _kv_config(backend: str, storage_path: str = SHARED_STORAGE_PATH) -> str:
    """vLLM's --kv-transfer-config for a transfer backend (the ExampleConnector's files under `storage_path`)."""
    config: dict[str, object] = {"kv_connector": VLLM_CONNECTOR[backend], "kv_role": "kv_both"}
    if backend == "shared-storage":
        config["kv_connector_extra_config"] = {"shared_storage_path": storage_path}
    return json.dumps(config, separators=(",", ":"))


def _storage_from_env(text: str) -> str:
    """A shared-storage instance's script with its KV path from PLANNER_KV_PATH (default SHARED_STORAGE_PATH): the
    config goes through a shell variable, so that the path expands inside the JSON."""
    marker = "@PLANNER_KV_PATH@"
    template = q(_kv_config("shared-storage", marker)).replace(marker, """'"$PLANNER_KV_PATH"'""")
    lines = (
        f'export PLANNER_KV_PATH="${{PLANNER_KV_PATH:-{SHARED_STORAGE_PATH}}}"  # where vLLM\'s ExampleConnector '
        "writes and reads the KV files: a path every instance sees; it never deletes them\n"
        f"PLANNER_KV_CONFIG={template}\n"
    )
    return _after_header(text, lines).replace(q(_kv_config("shared-storage")), '"$PLANNER_KV_CONFIG"')


def _renamed(text: str, engine: str, tag: str, side_port: int | None) -> str:
    """An instance's script: its own log names, and (vLLM) its own NIXL side-channel port."""
    text = text.replace(f"{engine}-replica0", f"{engine}-{tag}").replace("replica 0", tag)
    if side_port is not None:
        text = _after_header(
            text,
            f"export VLLM_NIXL_SIDE_CHANNEL_PORT=${{VLLM_NIXL_SIDE_CHANNEL_PORT:-{side_port}}}"
            "  # this instance's NIXL side channel\n",
        )
    return text


def _after_header(text: str, lines: str) -> str:
    """A script with `lines` right after its `set -euo pipefail`, before anything that reads them."""
    return text.replace("set -euo pipefail\n", "set -euo pipefail\n" + lines, 1)


def _instances(plan: Plan) -> list[tuple[str, int, Pool]]:
    assert plan.pools is not None
    return [("prefill", i, plan.pools.prefill) for i in range(plan.pools.prefill.instances)] + [
        ("decode", j, plan.pools.decode) for j in range(plan.pools.decode.instances)
    ]


def _check_engine(engine: str, backend: str) -> None:
    if engine == "sglang" and backend == "shared-storage":
        raise UnsupportedPlanError(
            "--transfer-backend shared-storage: SGLang's disaggregation has no file-system backend",
            details=["re-plan with --transfer-backend nixl or mooncake for SGLang, or launch with --engine vllm"],
        )
    if engine not in ("sglang", "vllm"):
        raise UnsupportedPlanError(
            f"--engine {engine}: a disaggregated plan launches with sglang or vllm",
            details=[
                "SGLang (--disaggregation-mode) and vLLM (--kv-transfer-config) run "
                "prefill and decode pools; re-solve with --serving agg for the others"
            ],
        )


def render_disagg(
    plan: Plan,
    engine: str,
    topo: Topology,
    profile: ModelProfile,
    *,
    model_path: str | None = None,
    port: int | None = None,
    plan_path: str = "plan.json",
    extra_args: Sequence[str] = (),
    max_model_len: int | None = None,
    device: str = "gpu",
) -> LaunchBundle:
    """One script per instance and node (`<engine>-prefill0-<node>.sh`, ...) and the router (SGLang) or proxy
    (vLLM) script that sends each request prefill-then-decode; `device` cpu (vLLM's CPU build, shared-storage
    only) runs each instance on the machine's cores."""
    assert plan.pools is not None
    _check_engine(engine, plan.pools.transfer_backend)
    module = import_module(f"planner.launch.{engine}")
    base = DEFAULT_PORT[engine] if port is None else port
    scripts: dict[str, str] = {}
    summary: list[str] = []
    urls: dict[str, list[tuple[str, ...]]] = {"prefill": [], "decode": []}  # (URL, SGLang's bootstrap port)
    nodes = {topo.gpu(g).node for _, i, pool in _instances(plan) for g in pool.gpu_ids[i]}
    for k, (role, i, pool) in enumerate(_instances(plan)):
        sub = instance_plan(plan, pool, i, profile.n_layers)
        limits = serving_limits(sub, profile, topo, max_model_len)
        flags = _flags(engine, role, index=i, backend=plan.pools.transfer_backend, multi_node=len(nodes) > 1)
        bundle = module.render(
            sub,
            topo,
            profile,
            model_path=model_path,
            port=base + k,
            plan_path=plan_path,
            extra_args=[*extra_args, *flags],
            limits=limits,
            **({"device": device} if engine == "vllm" else {}),
        )
        scripts.update(_instance_scripts(bundle.scripts, engine, f"{role}{i}", k, plan.pools.transfer_backend))
        url = f"http://{_address(topo, pool.gpu_ids[i][0], nodes)}:{base + k}"
        urls[role].append((url, str(SGLANG_BOOTSTRAP_PORT + i)) if engine == "sglang" and role == "prefill" else (url,))
        summary.append(
            f"{role} instance {i}: {pool.label.split(' ', 1)[1]} on GPUs "
            f"{','.join(map(str, pool.gpu_ids[i]))}, port {base + k}"
        )
    front = base + len(_instances(plan))
    front_script, extra = _front(plan, engine, urls, port=front, plan_path=plan_path)
    scripts.update(front_script)
    summary.append(
        f"{FRONT[engine]}: port {front}, prefill then decode ({plan.pools.ratio}, KV by {plan.pools.transfer_backend})"
    )
    return LaunchBundle(
        engine=engine, engine_version=module.ENGINE_VERSION, scripts=scripts, extra_files=extra, summary=summary
    )


def _instance_scripts(scripts: dict[str, str], engine: str, tag: str, k: int, backend: str) -> dict[str, str]:
    """Instance k's node scripts under its own names (`<engine>-<tag>-<node>.sh`), with its NIXL side channel or
    (shared-storage) its KV path."""
    out = {}
    side_port = NIXL_SIDE_CHANNEL_PORT + k if engine == "vllm" and backend == "nixl" else None
    for name, text in scripts.items():
        node = name.removeprefix(f"{engine}-").removesuffix(".sh")
        text = _renamed(text, engine, tag, side_port)
        if engine == "vllm" and backend == "shared-storage":
            text = _storage_from_env(text)
        out[f"{engine}-{tag}-{node}.sh"] = text
    return out


def _front(
    plan: Plan, engine: str, urls: dict[str, list[tuple[str, ...]]], *, port: int, plan_path: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The script of the front (SGLang's router, vLLM's proxy) and the files it needs beside it."""
    if engine == "sglang":
        return {"sglang-router.sh": _router_script(plan, urls, port, plan_path)}, {}
    return {"vllm-proxy.sh": _proxy_script(plan, urls, port, plan_path)}, {PROXY_FILE: proxy_source()}


def _front_header(plan: Plan, what: str, plan_path: str) -> list[str]:
    assert plan.pools is not None
    return [
        "#!/usr/bin/env bash",
        f"# {what}",
        f"# Generated by `planner launch` from {plan_path}: {plan.pools.ratio}, "
        f"prefill {plan.pools.prefill.label}, decode {plan.pools.decode.label}; start it after every instance "
        "script",
        "set -euo pipefail",
        "",
    ]


def _router_script(plan: Plan, urls: dict[str, list[tuple[str, ...]]], port: int, plan_path: str) -> str:
    parts = ["python", "-m", "sglang_router.launch_router", "--pd-disaggregation"]
    for url in urls["prefill"]:
        parts += ["--prefill", *url]
    for url in urls["decode"]:
        parts += ["--decode", *url]
    parts += ["--host", "0.0.0.0", "--port", str(port)]
    lines = _front_header(plan, "SGLang prefill/decode router", plan_path)
    lines += [
        command([_word(p) for p in parts]) + " &> sglang-router.log &",
        f'echo "router: http://$(hostname):{port}  (log: sglang-router.log)"',
        "wait",
    ]
    return "\n".join(lines) + "\n"


def _proxy_script(plan: Plan, urls: dict[str, list[tuple[str, ...]]], port: int, plan_path: str) -> str:
    parts = ['"$PYTHON"', f'"$(dirname "$0")/{PROXY_FILE}"', "--port", str(port)]
    for role in ("prefill", "decode"):
        for url in urls[role]:
            parts += [f"--{role}", f'"{url[0]}"']
    assert plan.pools is not None
    connector = VLLM_CONNECTOR[plan.pools.transfer_backend]
    lines = _front_header(plan, f"vLLM prefill/decode proxy ({connector})", plan_path)
    lines += [
        'PYTHON="${PYTHON:-python3}"',
        command(parts) + " &> vllm-proxy.log &",
        f'echo "proxy: http://$(hostname):{port}  (log: vllm-proxy.log)"',
        "wait",
    ]
    return "\n".join(lines) + "\n"


def proxy_source() -> str:
    """The proxy's source (planner/launch/vllm_disagg_proxy.py), written beside the scripts."""
    return (Path(__file__).parent / "vllm_disagg_proxy.py").read_text()


def _word(part: str) -> str:
    """A shell word: expansions (`${NODE_ADDR:?...}`) double-quoted so they expand, the rest quoted as usual."""
    return f'"{part}"' if "$" in part else q(part)
