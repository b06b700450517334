"""What a disaggregated request costs its schedulers beyond prefill, hand-off and its first decode step.

How SGLang's PD disaggregation runs a request (sgl-project/sglang, python/sglang/srt/disaggregation/decode.py,
the decode server's life cycle, and design.md): the router sends the request to a prefill and a decode instance
at once; the decode instance creates a KV receiver, pre-allocates the request's KV and hands its KV indices to
the prefill instance over the bootstrap channel (the prefill cannot send before that, its sender stays
`Bootstrapping` until then); once the prefill's transfer lands, the decode instance's transfer queue notices it
when it polls, and the first token, computed by the prefill and sent in the metadata buffer, is streamed when the
request joins the running batch as a prebuilt batch. Each scheduler does its share of that in its Python loop,
between its GPU steps, one request after another: bootstrap polls (a CPU all-reduce over the TP ranks), the KV
sender's transfer set-up, freeing and caching the prompt's KV on the prefill side; the receiver, pre-allocation
and polls on the decode side. Two constants, both fitted on dstack's SGLang + NIXL rows (benchmarks/disagg_rows.py;
benchmarks/RESULTS.md has the errors on the rows each was not fitted on):

- **host**: `PD_HOST_S` of host time per request on each instance it passes through, serial with that instance's
  steps. On a prefill instance a loop carrying b prompts takes the step plus b x PD_HOST_S, so the instance
  admits b / (step + b PD_HOST_S) requests/s, and a request's TTFT carries its own PD_HOST_S; a decode instance
  admits at most 1 / PD_HOST_S requests/s, and newcomers queue for it (M/D/1) as it gets busy (its own admission
  overlaps its prefill: the router sends both at once). Fitted on the one row where one cold prefill instance is
  the bottleneck beyond doubt (1P3D, 128 clients, 2,046-token prompts, 67-token outputs: 21.8 requests/s over the
  run, 22.3 steady once its tail is taken off (planner.disagg.drain), where the step prices 4 prompts in 110.7 ms:
  1 / 22.3 - 0.1107 / 4 = 17.1 ms; 18.3 ms before the MoE layers' activation passes were priced,
  planner.cost.step.moe_activation_bytes, 19.2 ms before gpt-oss's prefill attention was priced at its head dim's
  rate, planner.cost.attention_rate). It predicts the rows it was not fitted on: 2P2D's prefill-bound runs of the
  same prompts (2 / (27.7 + 17.1 ms) = 44.7 requests/s; measured 40.5 and 42.0) and 3P1D's, held by its one decode
  instance (1 / 17.1 ms = 58; measured 44.6 and 46.2). The hand-shake constant this replaces (21 ms per request
  at light load, fitted on the median TTFT of dstack's 8 lightly loaded rows) refits to 0.8 ms once the host
  time is in: it was the prefill's host time seen at light load.
- **first_wave**: a closed-loop benchmark starts its c clients at once, so each decode instance receives c / D
  requests in one instant and creates, pre-allocates and registers them one after another: the k-th waits k
  admissions, the mean (c / D - 1) / 2 admissions of `PD_ADMISSION_S`. It concerns the first wave only, c of the
  run's `prompts` requests, so the mean TTFT carries `min(1, c / prompts) x (c / D - 1) / 2 x PD_ADMISSION_S`.
  Fitted as the median, over dstack's 24 rows whose first wave is not prefill-bound (prompts up to 2,046 tokens,
  outputs over 100), of (mean - median TTFT) x prompts / c less the first-wave prefill queue already modelled
  (its loops' host time included), over (c / D - 1) / 2: 32.7 ms (the rows spread from -95 to 451 ms: a noisy,
  one-run benchmark). A burst's admission costs more than the steady host time: the gap carries whatever else
  the first wave meets.
"""

from __future__ import annotations

from planner.disagg.plan import Pool
from planner.plan import Workload

#: Host time a PD scheduler spends per request, serial with its steps, s (fitted on one dstack row, module docstring).
PD_HOST_S = 0.0171
#: One request's admission (receiver, KV pre-allocation, bootstrap registration) at a decode instance in a closed
#: loop's first wave, s (fitted on dstack's first waves, module docstring).
PD_ADMISSION_S = 0.0327


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
    (`prompts`: a closed-loop run's request count, as estimate_disagg's): its host time on its prefill instance,
    and a closed loop's first-wave admissions."""
    wave = (
        first_wave_admission_s(concurrency=workload.concurrency, decode_instances=decode.instances, prompts=prompts)
        if workload.mode == "closed"
        else 0.0
    )
    return {"host": PD_HOST_S, "first_wave": wave}
