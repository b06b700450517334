"""Dump an engine's real command-line flag names to a test fixture (tests/fixtures/engines/).

Run with the engine importable (see tests/fixtures/engines/README.md for how each was produced):
  python scripts/engine_flags.py vllm    > tests/fixtures/engines/vllm.json
  python scripts/engine_flags.py sglang  > tests/fixtures/engines/sglang.json
  python scripts/engine_flags.py trtllm  > tests/fixtures/engines/trtllm.json
The torchrun fixture comes from the installed torch (torch.distributed.run.get_args_parser).
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version


def argparse_flags(parser: argparse.ArgumentParser) -> list[str]:
    return sorted({o for a in parser._actions for o in a.option_strings})


def vllm() -> tuple[str, list[str]]:
    # `vllm serve`'s parser: the OpenAI server's arguments plus AsyncEngineArgs.add_cli_args.
    from vllm.platforms import current_platform

    if not current_platform.device_type:  # no GPU on the machine that reads the flags: defaults need a type
        current_platform.device_type = "cuda"
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())
    return version("vllm"), argparse_flags(parser)


def sglang() -> tuple[str, list[str]]:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    return version("sglang") if _installed("sglang") else "0.5.23", argparse_flags(parser)


def torchrun() -> tuple[str, list[str]]:
    import torch
    from torch.distributed.run import get_args_parser

    return torch.__version__.split("+")[0], argparse_flags(get_args_parser())


def _installed(dist: str) -> bool:
    try:
        version(dist)
        return True
    except Exception:
        return False


def main() -> None:
    engine = sys.argv[1]
    ver, flags = {"vllm": vllm, "sglang": sglang, "torchrun": torchrun}[engine]()
    json.dump({"engine": engine, "version": ver, "flags": flags}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
