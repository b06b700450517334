"""Where it runs: GPU types, the topology schema, the link graph with its routes, and detection."""

from planner.hardware.loading import load_topology, parse_topology, resolve_topology_path, shipped_topologies
from planner.hardware.topology import LINK_CLASSES, Topology, nvlink_links, pcie_relation

__all__ = [
    "LINK_CLASSES",
    "Topology",
    "load_topology",
    "nvlink_links",
    "parse_topology",
    "pcie_relation",
    "resolve_topology_path",
    "shipped_topologies",
]
