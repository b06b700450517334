"""The `planner` command line: parse, call the library, render. No logic lives here.

Errors are caught at this edge only: a PlannerError prints one message (and its bullets) to
stderr and exits with its code (1 bad input, 2 infeasible, 3 validation failed).
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from planner.errors import PlannerError

app = typer.Typer(
    help="Plan how to split an LLM over GPUs for inference: which GPUs, which layers, which parallelism.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="The model catalog and traced layer graphs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
topology_app = typer.Typer(help="Machines as link graphs: show, collective timing, detect.", no_args_is_help=True)
app.add_typer(topology_app, name="topology")

console = Console()
err_console = Console(stderr=True)

WeightDtypeOpt = Annotated[str, typer.Option("--weight-dtype", help="Weight dtype: bf16, fp16, fp8, int4.")]
KvDtypeOpt = Annotated[str, typer.Option("--kv-dtype", help="KV-cache dtype: bf16, fp16, fp8.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (the same model the table shows).")]


def cli_errors(fn):
    """Turn a PlannerError into one clear message and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def print_json(model) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


@models_app.command("list")
@cli_errors
def models_list(json_out: JsonOpt = False) -> None:
    """List the shipped model catalog with aliases."""
    from planner.models import catalog

    entries = list(catalog().values())
    if json_out:
        import json

        sys.stdout.write(json.dumps([{"name": e.name, "hub_id": e.hub_id, "aliases": list(e.aliases)} for e in entries],
                                    indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="model catalog")
    table.add_column("name")
    table.add_column("aliases")
    table.add_column("hub id")
    for e in entries:
        table.add_row(e.name, ", ".join(e.aliases), e.hub_id)
    console.print(table)


@models_app.command("show")
@cli_errors
def models_show(
    model: Annotated[str, typer.Argument(help="Catalog name or alias, a config.json path, or a hub id.")],
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    all_layers: Annotated[bool, typer.Option("--all-layers", help="One row per layer, not runs.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Trace a model and show its layer graph: parameters, weight bytes, KV bytes and FLOPs per token."""
    from planner.dtypes import check_kv_dtype, check_weight_dtype
    from planner.layergraph import summarize
    from planner.models import load_profile

    check_weight_dtype(weight_dtype)
    check_kv_dtype(kv_dtype)
    summary = summarize(load_profile(model), weight_dtype, kv_dtype)
    if json_out:
        print_json(summary)
        return
    from planner.report import model_table

    console.print(model_table(summary, all_layers=all_layers))


@topology_app.command("list")
@cli_errors
def topology_list(json_out: JsonOpt = False) -> None:
    """List the shipped topologies."""
    from planner.topology import load_topology, shipped_topologies

    rows = [(name, load_topology(name)) for name in shipped_topologies()]
    if json_out:
        import json

        sys.stdout.write(json.dumps([{"name": n, "gpus": t.n_gpus, "nodes": t.n_nodes,
                                      "description": t.definition.description} for n, t in rows], indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="shipped topologies")
    for col in ("name", "GPUs", "nodes", "description"):
        table.add_column(col)
    for n, t in rows:
        table.add_row(n, str(t.n_gpus), str(t.n_nodes), t.definition.description)
    console.print(table)


@topology_app.command("show")
@cli_errors
def topology_show(
    topology: Annotated[str, typer.Argument(help="A topology YAML path or a shipped name.")],
    json_out: JsonOpt = False,
) -> None:
    """Show a topology: its GPUs, its links and the GPU-to-GPU bandwidth matrix."""
    from planner.topology import load_topology, summarize_topology

    summary = summarize_topology(load_topology(topology))
    if json_out:
        print_json(summary)
        return
    from planner.report import topology_table

    console.print(topology_table(summary))


@topology_app.command("schema")
@cli_errors
def topology_schema() -> None:
    """Print the JSON Schema of a topology YAML."""
    import json

    from planner.topology import TopologyDef

    sys.stdout.write(json.dumps(TopologyDef.model_json_schema(), indent=2) + "\n")


@topology_app.command("collective")
@cli_errors
def topology_collective(
    topology: Annotated[str, typer.Argument(help="A topology YAML path or a shipped name.")],
    sizes: Annotated[str, typer.Option("--sizes", help="Message sizes, comma separated: 16KB,1MiB,64MB or bytes.")] = "16KB,1MB,64MB",
    op: Annotated[str, typer.Option("--op", help="all-reduce, all-gather, reduce-scatter or all-to-all.")] = "all-reduce",
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="The group, e.g. 0,1,2,3; default all GPUs.")] = None,
    context: Annotated[str, typer.Option("--context", help="nccl (as nccl-tests times it) or engine (inside a CUDA graph).")] = "nccl",
    json_out: JsonOpt = False,
) -> None:
    """Predicted time and bus bandwidth of a collective over a GPU group, per message size."""
    from planner.collectives import collective_estimates
    from planner.topology import load_topology

    topo = load_topology(topology)
    result = collective_estimates(topo, sizes=sizes, op=op, gpu_ids=gpu_ids, context=context)
    if json_out:
        import json

        sys.stdout.write(json.dumps([r.model_dump(include={"bytes", "time_us", "busbw_gbps", "algorithm", "protocol"})
                                     for r in result.rows], indent=2) + "\n")
        return
    from planner.report import collective_table

    console.print(collective_table(result.rows, f"{op} over GPUs {result.gpu_ids} of {topo.name} ({context})"))


@topology_app.command("detect")
@cli_errors
def topology_detect(
    from_file: Annotated[Optional[str], typer.Option("--from", help="Saved `nvidia-smi topo -m` output; default: run nvidia-smi.")] = None,
    gpus_csv: Annotated[Optional[str], typer.Option("--gpus-csv", help="Saved `nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id --format=csv` output.")] = None,
    gpu_type: Annotated[Optional[str], typer.Option("--gpu-type", help="GPU type for every GPU (overrides --gpus-csv).")] = None,
    name: Annotated[str, typer.Option("--name", help="Topology name.")] = "detected",
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Write the YAML here; default stdout.")] = None,
) -> None:
    """Write a topology YAML from `nvidia-smi topo -m` (run here, or from saved output)."""
    from pathlib import Path

    from planner.detect import detect, run_nvidia_smi, to_yaml
    from planner.errors import InputError
    from planner.topology import parse_topology

    def read(path: str, what: str) -> str:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None

    if from_file:
        topo_text, source = read(from_file, "the topo matrix"), from_file
        csv_text = read(gpus_csv, "the GPU CSV") if gpus_csv else None
    else:
        topo_text, csv_text = run_nvidia_smi()
        source = "nvidia-smi topo -m"
        if gpus_csv:
            csv_text = read(gpus_csv, "the GPU CSV")
    text = to_yaml(detect(topo_text, gpus_csv=csv_text, gpu_type=gpu_type, name=name, source=source))
    parse_topology(text, f"detected from {source}")  # what we write must load
    if output:
        Path(output).write_text(text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog name or alias, config.json path, or hub id.")]
TopologyOpt = Annotated[str, typer.Option("--topology", "-t", help="Topology YAML path or shipped name.")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", "-c", help="Sequences decoding together (all replicas).")]
IslOpt = Annotated[int, typer.Option("--isl", help="Input tokens per sequence.")]
OslOpt = Annotated[int, typer.Option("--osl", help="Output tokens per sequence.")]
MemFracOpt = Annotated[float, typer.Option("--gpu-memory-fraction", help="Share of GPU memory the engine may use.")]
CalibrationOpt = Annotated[Optional[str], typer.Option("--calibration", help="YAML overriding cost-model constants.")]
OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", help="Write the Plan JSON here.")]


def _workload(concurrency, isl, osl, weight_dtype, kv_dtype, fraction):
    from pydantic import ValidationError

    from planner.errors import InputError
    from planner.plan import Workload
    from planner.topology import validation_messages

    try:
        return Workload(concurrency=concurrency, isl=isl, osl=osl, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                        gpu_memory_fraction=fraction)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        raise InputError(f"bad workload: {msgs[0]}", details=msgs[1:]) from None


def _load_inputs(model, topology, concurrency, isl, osl, weight_dtype, kv_dtype, fraction, calibration):
    """The workload, constants, topology and traced model every planning command starts from."""
    from planner.constants import load_constants
    from planner.models import load_profile
    from planner.topology import load_topology

    work = _workload(concurrency, isl, osl, weight_dtype, kv_dtype, fraction)
    return work, load_constants(calibration), load_topology(topology), load_profile(model)


def _parse_int_list(text: Optional[str], option: str) -> Optional[list[int]]:
    from planner.errors import InputError

    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated integers, got '{text}'") from None


def _write_plan(plan, output: Optional[str]) -> None:
    if output:
        from pathlib import Path

        from planner.errors import InputError

        try:
            Path(output).write_text(plan.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            raise InputError(f"{output}: cannot write the plan ({exc.strerror or exc})") from None


@app.command("estimate")
@cli_errors
def estimate_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree of every stage.")],
    pp: Annotated[int, typer.Option("--pp", help="Pipeline stages.")] = 1,
    layers: Annotated[Optional[str], typer.Option("--layers", help="Layers per stage, e.g. 20,20,20,20; default even.")] = None,
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="GPUs in stage order; default the first tp x pp.")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Data-parallel copies on the following GPUs.")] = 1,
    concurrency: ConcurrencyOpt = 1,
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Predict time, traffic and memory of a partition you choose (TP, PP, layers, GPUs)."""
    from planner.cost import estimate, infeasible_error
    from planner.errors import InputError
    from planner.plan import SolverInfo, build_plan, even_layers, partition_from_counts

    work, constants, topo, profile = _load_inputs(model, topology, concurrency, isl, osl, weight_dtype, kv_dtype,
                                                  gpu_memory_fraction, calibration)
    if tp < 1 or replicas < 1:
        raise InputError("--tp and --replicas must be at least 1")
    counts = _parse_int_list(layers, "--layers") or even_layers(profile.n_layers, pp)
    if layers is not None and len(counts) != pp and pp != 1:
        raise InputError(f"--layers gives {len(counts)} stages but --pp is {pp}")
    if sum(counts) != profile.n_layers:
        raise InputError(f"--layers sums to {sum(counts)}, but {profile.name} has {profile.n_layers} layers")
    ids = _parse_int_list(gpu_ids, "--gpu-ids") or list(range(topo.n_gpus))
    partition = partition_from_counts(counts, ids, tp, replicas)
    prediction = estimate(profile, topo, partition, work, constants)
    if not prediction.fits:
        raise infeasible_error(profile, topo, partition, work, prediction)
    plan = build_plan(profile, topo, partition, work, prediction, SolverInfo(status="GIVEN"))
    _write_plan(plan, output)
    if json_out:
        import json

        flat = {"tpot_ms": prediction.tpot_ms, "ttft_ms": prediction.ttft_ms, "tokens_per_s": prediction.tokens_per_s,
                "max_concurrency": prediction.max_concurrency, "memory_per_gpu_bytes": prediction.memory_per_gpu_bytes,
                "hbm_bytes_per_token": prediction.hbm_bytes_per_token,
                "interconnect_bytes_per_token": prediction.interconnect_bytes_per_token,
                "roofline_tpot_ms": prediction.roofline_tpot_ms, "fits": prediction.fits}
        sys.stdout.write(json.dumps({**flat, "plan": json.loads(plan.model_dump_json())}, indent=2) + "\n")
        return
    from planner.report import prediction_table

    console.print(prediction_table(prediction, f"{profile.name} on {topo.name}: {partition.shape}"))
    if output:
        console.print(f"wrote {output}")


@app.command("solve")
@cli_errors
def solve_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    concurrency: ConcurrencyOpt = 1,
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    objective: Annotated[str, typer.Option("--objective", help="latency (TPOT), throughput (tokens/s at KV capacity) or traffic (bytes per token).")] = "latency",
    tpot_slo: Annotated[Optional[float], typer.Option("--tpot-slo", help="Upper bound on TPOT in ms.")] = None,
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    gpus: Annotated[Optional[int], typer.Option("--gpus", help="Use the first N GPUs.")] = None,
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="Use these GPUs, e.g. 0,1,2,3.")] = None,
    max_tp: Annotated[Optional[int], typer.Option("--max-tp", help="Largest tensor-parallel degree to consider.")] = None,
    max_pp: Annotated[Optional[int], typer.Option("--max-pp", help="Most pipeline stages to consider (default 16).")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time limit in seconds.")] = 60.0,
    top: Annotated[int, typer.Option("--top", help="Runners-up of other shapes to show.")] = 3,
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Write the Plan JSON here (with --emit: a folder for the plan and the scripts).")] = None,
    emit: Annotated[Optional[str], typer.Option("--emit", help="Also write launch scripts for this engine.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Find the best split of a model over a machine with CP-SAT: stages, GPUs, TP degrees, replicas."""
    from planner.errors import InputError
    from planner.solver import solve

    work, constants, topo, profile = _load_inputs(model, topology, concurrency, isl, osl, weight_dtype, kv_dtype,
                                                  gpu_memory_fraction, calibration)
    if gpus is not None and gpu_ids is not None:
        raise InputError("give --gpus or --gpu-ids, not both")
    ids = _parse_int_list(gpu_ids, "--gpu-ids")
    if gpus is not None:
        if not 1 <= gpus <= topo.n_gpus:
            raise InputError(f"--gpus {gpus}: {topo.name} has {topo.n_gpus} GPUs")
        ids = list(range(gpus))
    if time_limit <= 0:
        raise InputError("--time-limit must be positive")
    plan = solve(profile, topo, work, objective=objective, gpu_ids=ids, tpot_slo_ms=tpot_slo, time_limit_s=time_limit,
                 top=top, max_tp=max_tp, max_pp=max_pp, constants=constants)
    if emit:
        from pathlib import Path

        folder = output
        plan_path = str(Path(folder) / "plan.json") if folder else "plan.json"
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            _write_plan(plan, plan_path)
        _emit(plan, emit, folder, None, None, plan_path)
        if not json_out:
            return
    else:
        _write_plan(plan, output)
    if json_out:
        print_json(plan)
        return
    from planner.report import plan_report

    console.print(plan_report(plan))
    if output:
        console.print(f"wrote {output}")


@app.command("compare")
@cli_errors
def compare_cmd(
    model: ModelOpt,
    topology: Annotated[list[str], typer.Option("--topology", "-t", help="A machine; give two or more.")],
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Loads, comma separated.")] = "1,8,32,128",
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    objective: Annotated[str, typer.Option("--objective", help="latency or throughput.")] = "latency",
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write the three-panel PNG here.")] = None,
    breakdown_at: Annotated[Optional[int], typer.Option("--breakdown-at", help="Concurrency of the breakdown panel (default the first).")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time limit per machine and load, s.")] = 10.0,
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare machines (NVLink versus PCIe, ...) with the best plan on each, at several loads."""
    from planner.compare import compare, parse_concurrencies
    from planner.constants import load_constants
    from planner.models import load_profile
    from planner.topology import load_topology

    loads = parse_concurrencies(concurrency)
    work = _workload(loads[0], isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction)
    topos = [load_topology(t) for t in topology]
    profile = load_profile(model)
    result = compare(profile, topos, work, loads, objective=objective, time_limit_s=time_limit,
                     constants=load_constants(calibration))
    if plot:
        from planner.plot import plot_compare

        plot_compare(result, plot, breakdown_at)
    if json_out:
        print_json(result)
        return
    from planner.report import compare_table

    console.print(compare_table(result))
    if plot:
        console.print(f"wrote {plot}")


@app.command("launch")
@cli_errors
def launch_cmd(
    plan_file: Annotated[str, typer.Argument(help="A plan JSON from `planner solve -o` or `planner estimate -o`.")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="vllm, sglang, trtllm or torchrun.")],
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Write one script per node into this folder; default: print.")] = None,
    model_path: Annotated[Optional[str], typer.Option("--model-path", help="Local weights or hub id; default the catalog's hub id.")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Server port (replicas take the following ports).")] = None,
) -> None:
    """Turn a plan into launch scripts for vLLM, SGLang, TensorRT-LLM or torchrun (one per node)."""
    from planner.launch import load_plan

    plan = load_plan(plan_file)
    _emit(plan, engine, output, model_path, port, plan_file)


def _emit(plan, engine, output, model_path, port, plan_path) -> None:
    from planner.launch import render, write_bundle

    bundle = render(plan, engine, model_path=model_path, port=port, plan_path=plan_path)
    if output:
        for path in write_bundle(bundle, output):
            console.print(f"wrote {path}")
    else:
        for name, text in {**bundle.scripts, **bundle.extra_files}.items():
            sys.stdout.write(f"# ===== {name} =====\n{text}\n")
    for line in bundle.summary:
        err_console.print(f"{bundle.engine} {bundle.engine_version}: {line}", highlight=False)


@app.command("validate")
@cli_errors
def validate_cmd(
    plan_file: Annotated[str, typer.Argument(help="A plan JSON from `planner solve -o` or `planner estimate -o`.")],
    backend: Annotated[str, typer.Option("--backend", help="gloo (CPU) or nccl (GPUs).")] = "gloo",
    scale: Annotated[str, typer.Option("--scale", help="mini (small dimensions, CPU) or full (real dimensions, GPUs).")] = "mini",
    tokens: Annotated[int, typer.Option("--tokens", help="Decode steps after the prefill.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before the run is ended.")] = 120.0,
    json_out: JsonOpt = False,
) -> None:
    """Run a plan with torch.distributed (its stages, GPU groups and TP slices) and check its predictions."""
    from planner.errors import ValidationRunError
    from planner.validate.runner import validate

    report = validate(plan_file, backend=backend, scale=scale, tokens=tokens, timeout_s=timeout)
    if json_out:
        print_json(report)
    else:
        from planner.report import validation_table

        console.print(validation_table(report))
    if not report.passed:
        failed = [f"{c.name}" + (f" (rank {c.rank})" if c.rank is not None else "") for c in report.checks if c.passed is False]
        raise ValidationRunError(f"{len(failed)} check(s) failed", details=failed[:10])


def main() -> None:
    """The console script: run the app without the cyclic garbage collector, then end the process
    without the interpreter's teardown.

    With torch and transformers loaded, Python's shutdown (clearing every module, then libtorch's
    static destructors) takes about 1 s on 2 cores, a fifth of a cold `models show`. By the time
    the app returns, everything it wrote is closed (cache files are written whole, then renamed),
    so: run the atexit handlers (logging, coverage), flush stdout and stderr, and exit at once.
    """
    # Importing torch and transformers creates ~600k long-lived objects, and the cyclic collector
    # rescans them again and again: 0.5-0.7 s of a cold `models show` on 2 cores. A run is short and
    # reference counting frees what it drops, so the collector stays off in the console script.
    import gc

    gc.disable()
    try:
        app()
        code = 0
    except SystemExit as exc:  # typer/click end every run this way
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # reader went away (`| head`), or stream closed
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
