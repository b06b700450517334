"""What a disaggregated request waits for beyond prefill, hand-off and its first decode step: the PD hand-shake.

How SGLang's PD disaggregation runs a request (sgl-project/sglang, python/sglang/srt/disaggregation/decode.py,
the decode server's life cycle, and design.md): the router sends the request to a prefill and a decode instance
at once; the decode instance creates a KV receiver, pre-allocates the request's KV and hands its KV indices to
the prefill instance over the bootstrap channel (the prefill cannot send before that, its sender stays
`Bootstrapping` until then); once the prefill's transfer lands, the decode instance's transfer queue notices it
when it polls, and the first token, computed by the prefill and sent in the metadata buffer, is streamed when the
request joins the running batch as a prebuilt batch. The decode side does all of it in its scheduler loop
(`process_decode_queue` once per loop iteration, `--disaggregation-decode-polling-interval` 1), between decode
steps: half a step at arrival and half a step at the poll, on average, which is the one decode step
`first_decode` already charges. Two parts remain, each with one constant fitted on dstack's SGLang + NIXL rows
(benchmarks/disagg_rows.py; leave-one-publisher-out against Mooncake's and SemiAnalysis's rows, which it does not
fit, in benchmarks/RESULTS.md):

- **handshake**: a fixed time per request, `PD_HANDSHAKE_S`: the router's extra hop, the bootstrap round trip
  (KV indices decode -> prefill, transfer status prefill -> decode) and the CPU all-reduce each side does over its
  TP ranks when it polls. Fitted as the median excess of dstack's published *median* TTFT over the prediction
  without any first-wave term, on its 8 lightly loaded rows (32 clients, prompts of 128 or 2,046 tokens, outputs
  over 600 tokens): 11-49 ms, median 21 ms.
- **first_wave**: a closed-loop benchmark starts its c clients at once, so each decode instance receives c / D
  requests in one instant and creates, pre-allocates and registers them one after another: the k-th waits k
  admissions, the mean (c / D - 1) / 2 admissions of `PD_ADMISSION_S`. It concerns the first wave only, c of the
  run's `prompts` requests, so the mean TTFT carries `min(1, c / prompts) x (c / D - 1) / 2 x PD_ADMISSION_S`.
  Fitted as the median, over dstack's 24 rows whose first wave is not prefill-bound (prompts up to 2,046 tokens,
  outputs over 100), of (mean - median TTFT) x prompts / c less the first-wave prefill queue already modelled,
  over (c / D - 1) / 2: 29 ms (the rows spread from -52 to 376 ms: a noisy, one-run benchmark).
"""

from __future__ import annotations

from planner.disagg.plan import Pool
from planner.plan import Workload

#: Fixed PD hand-shake per request, s (fitted on dstack's SGLang + NIXL rows, module docstring).
PD_HANDSHAKE_S = 0.021
#: One request's admission (receiver, KV pre-allocation, bootstrap registration) at a decode instance, s (fitted on
#: dstack's first waves, module docstring).
PD_ADMISSION_S = 0.029


def first_wave_admission_s(
    *, concurrency: int, decode_instances: int, prompts: int | None, admission_s: float = PD_ADMISSION_S
) -> float:
    """Mean TTFT a closed-loop run of `prompts` requests carries from its first wave's admissions at the decode
    pool: the c / D requests of one decode instance admitted one after another, on c of the prompts."""
    if not prompts:
        return 0.0
    share = min(1.0, concurrency / prompts)
    return share * max(0.0, concurrency / decode_instances - 1) / 2 * admission_s


def pd_ttft_parts(workload: Workload, decode: Pool, prompts: int | None) -> dict[str, float]:
    """The TTFT parts (s) a disaggregated request adds beyond request, queue, prefill, transfer and first decode
    (`prompts`: a closed-loop run's request count, as estimate_disagg's)."""
    wave = (
        first_wave_admission_s(concurrency=workload.concurrency, decode_instances=decode.instances, prompts=prompts)
        if workload.mode == "closed"
        else 0.0
    )
    return {"handshake": PD_HANDSHAKE_S, "first_wave": wave}
