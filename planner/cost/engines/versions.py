"""Engine releases older than the kernels a profile prices: said in the output, not priced as if they were new.

A profile's kernel rates for multi-head latent attention (DeepSeek-V2/V3/R1, Kimi-K2) come from FlashMLA and
DeepGEMM (their READMEs seed `mla_flops_efficiency` and `moe_hbm_efficiency`, planner/cost/engines/base.py), which
DeepSeek released on 24 and 26 February 2025, and from the engine releases that run them. The releases cut before
then served these models on other kernels (Triton MLA decode in SGLang, vLLM's V0 engine): on dstack's early-2025
DeepSeek-R1 study (tests/data/corpus/dstack.yaml, Deepseek-R1/raw_data) SGLang 0.4.3.post2 on 8x H200 decodes 4
clients' 3,200-token prompts at 43.6 ms a token, where SGLang 0.5.12 on the same GPUs decodes 4 clients' 1,024-token
prompts at 9.7 ms (SemiAnalysis InferenceX, tests/data/corpus/semianalysis.yaml). No constant of a current profile
describes the older kernels, and none could be checked on a second publisher's rows: a release below a profile's
`KernelFloor` gets its figures with that said beside them and no error band, and its corpus rows are reported
apart from the accuracy figures (benchmarks/version_rows.py).
"""

from __future__ import annotations

import re
from typing import Optional

from planner.cost.engines import engine_profile

#: The first dotted number in a version string: 0.4.3.post2 -> 0.4.3, v0.5.12-cu130 -> 0.5.12,
#: 0.7.3.dev138+g21f6ca217 -> 0.7.3, sglang-0.5.7-rocm -> 0.5.7. Parts of at most 9 digits (a longer run is no
#: release number, and int() refuses strings past 4,300 digits).
_VERSION = re.compile(r"(?<![\d.])(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?(?!\d)")


def parse_version(text: Optional[str]) -> Optional[tuple[int, int, int]]:
    """(major, minor, patch) of a release string, or None where it names none (unknown, nightly, a commit)."""
    match = _VERSION.search(text or "")
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def unmodelled_kernels(engine: str, version: Optional[str], *, attention: str) -> Optional[str]:
    """Why the profile of `engine` does not describe release `version` for a model with this attention ('gqa' or
    'mla'), or None where it does or where the version is not given or not a release number."""
    release = parse_version(version)
    if release is None:
        return None
    for floor in engine_profile(engine).kernel_floors:
        since = parse_version(floor.since)
        if floor.attention == attention and since is not None and release < since:
            return (
                f"{engine} {version} predates the {attention.upper()} kernels its profile prices "
                f"({floor.since} and later: {floor.why}); its figures are not modelled"
            )
    return None
