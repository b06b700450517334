"""`planner topology list|show|schema|collective|detect`: machines as link graphs (collective's and detect's options:
`CollectiveOptions` and `DetectOptions`, planner/hardware/options.py, derived by planner/cli/options.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from planner.cli.common import JsonOpt, cli_errors, console, print_json, say, write_file
from planner.cli.options import derive
from planner.cost.collective_report import collective_estimates
from planner.files import read_text
from planner.hardware import load_topology, shipped_topologies
from planner.hardware.detect import detect, host_p2p_level, run_nvidia_smi, to_yaml
from planner.hardware.loading import parse_topology
from planner.hardware.options import CollectiveOptions, DetectOptions
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
        print_json(
            [
                {"name": n, "gpus": t.n_gpus, "nodes": t.n_nodes, "description": t.definition.description}
                for n, t in rows
            ]
        )
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
@derive(options=CollectiveOptions)
def topology_collective(topology: TopologyArg, json_out: JsonOpt = False, *, options: CollectiveOptions) -> None:
    """Predicted time and bus bandwidth of a collective over a GPU group, per message size."""
    topo = load_topology(topology)
    op, context = options.op, options.context
    result = collective_estimates(topo, sizes=options.sizes, op=op, gpu_ids=options.gpu_ids, context=context)
    if json_out:
        print_json(
            [r.model_dump(include={"bytes", "time_us", "busbw_gbps", "algorithm", "protocol"}) for r in result.rows]
        )
        return

    console.print(
        collective_table(result.rows, f"{op} over GPUs {format_ids(result.gpu_ids)} of {topo.name} ({context})")
    )


@topology_app.command("detect")
@cli_errors
@derive(options=DetectOptions)
def topology_detect(json_out: JsonOpt = False, *, options: DetectOptions) -> None:
    """Write a topology YAML from `nvidia-smi topo -m` (run here, or from saved output)."""
    topo_text, csv_text, p2p_text, source, p2p_level = _detect_inputs(options)
    doc = detect(
        topo_text,
        gpus_csv=csv_text,
        gpu_type=options.gpu_type,
        name=options.name,
        source=source,
        p2p_text=p2p_text,
        p2p_level=p2p_level,
    )
    text = to_yaml(doc)
    parse_topology(text, f"detected from {source}")  # what we write must load
    if options.output:
        write_file(options.output, text, "the topology")
        say(f"wrote {options.output}")
    if json_out:
        print_json(doc)
    elif not options.output:
        sys.stdout.write(text)


def _detect_inputs(options: DetectOptions) -> tuple[str, Optional[str], Optional[str], str, Optional[str]]:
    """The topo matrix, the GPU CSV, the p2p matrix, where they came from, and the PCIe p2p level: read from the
    saved files (--from), or from nvidia-smi and /proc/cpuinfo here."""
    gpus_csv, p2p = options.gpus_csv, options.p2p
    p2p_level: Optional[str] = options.p2p_level
    if options.from_file:
        topo_text = read_text(options.from_file, "the topo matrix")
        csv_text = read_text(gpus_csv, "the GPU CSV") if gpus_csv else None
        p2p_text = read_text(p2p, "the p2p matrix") if p2p else None
        return topo_text, csv_text, p2p_text, options.from_file, p2p_level
    topo_text, csv_text, p2p_text = run_nvidia_smi()
    if p2p_level is None and Path("/proc/cpuinfo").exists():
        p2p_level = host_p2p_level(read_text("/proc/cpuinfo", "/proc/cpuinfo"))
    if gpus_csv:
        csv_text = read_text(gpus_csv, "the GPU CSV")
    return topo_text, csv_text, p2p_text, "nvidia-smi topo -m", p2p_level
