"""`planner topology list|show|schema|collective|detect`: machines as link graphs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from planner.cli.common import JsonOpt, cli_errors, console, print_json, say, write_file
from planner.cost.collective_report import collective_estimates
from planner.errors import InputError
from planner.files import read_text
from planner.hardware import load_topology, shipped_topologies
from planner.hardware.detect import detect, host_p2p_level, run_nvidia_smi, to_yaml
from planner.hardware.loading import parse_topology
from planner.hardware.schema import TopologyDef
from planner.hardware.summary import summarize_topology
from planner.report.tables import collective_table, topology_list_table, topology_table
from planner.units import format_ids

topology_app = typer.Typer(help="Machines as link graphs: show, collective timing, detect.", no_args_is_help=True)
TopologyArg = Annotated[str, typer.Argument(help="A topology YAML path or a shipped name.")]


@topology_app.command("list")
@cli_errors
def topology_list(json_out: JsonOpt = False) -> None:
    """List the shipped topologies."""
    rows = [(name, load_topology(name)) for name in shipped_topologies()]
    if json_out:
        print_json([{"name": n, "gpus": t.n_gpus, "nodes": t.n_nodes, "description": t.definition.description}
                    for n, t in rows])
        return

    console.print(topology_list_table(rows))


@topology_app.command("show")
@cli_errors
def topology_show(topology: TopologyArg, json_out: JsonOpt = False) -> None:
    """Show a topology: its GPUs, its links and the GPU-to-GPU bandwidth matrix (a summary past 64 GPUs)."""
    summary = summarize_topology(load_topology(topology))
    if json_out:
        print_json(summary)
        return

    console.print(topology_table(summary))


@topology_app.command("schema")
@cli_errors
def topology_schema(json_out: JsonOpt = True) -> None:
    """Print the JSON Schema of a topology YAML (it is JSON either way)."""
    print_json(TopologyDef.model_json_schema())


@topology_app.command("collective")
@cli_errors
def topology_collective(
    topology: TopologyArg,
    sizes: Annotated[str, typer.Option("--sizes", help="Message sizes, comma separated: 16KB,1MiB,64MB or bytes.")] = "16KB,1MB,64MB",
    op: Annotated[str, typer.Option("--op", help="all-reduce, all-gather, reduce-scatter or all-to-all.")] = "all-reduce",
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="The group, e.g. 0,1,2,3; default all GPUs.")] = None,
    context: Annotated[str, typer.Option("--context", help="nccl (as nccl-tests times it), torch (one torch.distributed call) or engine (inside a CUDA graph).")] = "nccl",
    json_out: JsonOpt = False,
) -> None:
    """Predicted time and bus bandwidth of a collective over a GPU group, per message size."""
    topo = load_topology(topology)
    result = collective_estimates(topo, sizes=sizes, op=op, gpu_ids=gpu_ids, context=context)
    if json_out:
        print_json([r.model_dump(include={"bytes", "time_us", "busbw_gbps", "algorithm", "protocol"})
                    for r in result.rows])
        return

    console.print(collective_table(result.rows, f"{op} over GPUs {format_ids(result.gpu_ids)} of {topo.name} ({context})"))


@topology_app.command("detect")
@cli_errors
def topology_detect(
    from_file: Annotated[Optional[str], typer.Option("--from", help="Saved `nvidia-smi topo -m` output; default: run nvidia-smi.")] = None,
    gpus_csv: Annotated[Optional[str], typer.Option("--gpus-csv", help="Saved `nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id --format=csv` output.")] = None,
    p2p: Annotated[Optional[str], typer.Option("--p2p", help="Saved `nvidia-smi topo -p2p r` output: GPU pairs without peer-to-peer.")] = None,
    gpu_type: Annotated[Optional[str], typer.Option("--gpu-type", help="GPU type for every GPU (overrides --gpus-csv).")] = None,
    p2p_level: Annotated[Optional[str], typer.Option("--p2p-level", help="How far NCCL uses PCIe peer-to-peer: pix, pxb, phb or sys; default: NCCL's rule for this host's CPU (pxb on Intel, sys on AMD), sys with --from.")] = None,
    name: Annotated[str, typer.Option("--name", help="Topology name.")] = "detected",
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Write the YAML here; default stdout.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a topology YAML from `nvidia-smi topo -m` (run here, or from saved output)."""
    if p2p_level is not None and p2p_level not in ("pix", "pxb", "phb", "sys"):
        raise InputError(f"--p2p-level: choose one of pix, pxb, phb, sys, got '{p2p_level[:40]}'")

    if from_file:
        topo_text, source = read_text(from_file, "the topo matrix"), from_file
        csv_text = read_text(gpus_csv, "the GPU CSV") if gpus_csv else None
        p2p_text = read_text(p2p, "the p2p matrix") if p2p else None
    else:
        topo_text, csv_text, p2p_text = run_nvidia_smi()
        source = "nvidia-smi topo -m"
        if p2p_level is None and Path("/proc/cpuinfo").exists():
            p2p_level = host_p2p_level(read_text("/proc/cpuinfo", "/proc/cpuinfo"))
        if gpus_csv:
            csv_text = read_text(gpus_csv, "the GPU CSV")
    doc = detect(topo_text, gpus_csv=csv_text, gpu_type=gpu_type, name=name, source=source, p2p_text=p2p_text,
                 p2p_level=p2p_level)
    text = to_yaml(doc)
    parse_topology(text, f"detected from {source}")  # what we write must load
    if output:
        write_file(output, text, "the topology")
        say(f"wrote {output}")
    if json_out:
        print_json(doc)
    elif not output:
        sys.stdout.write(text)
