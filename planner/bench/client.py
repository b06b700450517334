"""A load generator for OpenAI-compatible completion servers (vLLM, SGLang, TensorRT-LLM).

Closed loop (`run_load`): `concurrency` requests are kept in flight until `requests` have finished. Open loop
(`run_open_loop`): each request is sent at its time in a schedule (`poisson_schedule`: seeded exponential gaps),
whatever is still in flight, up to a bound on the requests in flight past which the run stops with one line. Each request sends a prompt of `isl`
random token ids (no tokenizer needed), asks for exactly `osl` tokens (`max_tokens`, `ignore_eos`) and streams
them: TTFT is the time to the first streamed token, TPOT the mean gap between the first and the last
((t_last - t_first) / (tokens - 1)). Tokens are counted from the final usage report where the server sends
one, else one per streamed choice. Every network step has a timeout; a server that is down, answers with an
error, or breaks off mid-stream raises BenchError with one clear line.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import urlparse

from planner.errors import BenchError, InputError

#: Seconds to connect, and to wait for any single streamed chunk.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RequestResult:
    """One request, with its raw times on this host's monotonic clock (`time.monotonic`, seconds), so that a
    server log written on the same host (or a trace) can be matched to it by `request_id` (sent as X-Request-Id)."""

    request_id: str
    sent_at_s: float
    first_token_at_s: float
    last_token_at_s: float
    tokens: int
    scheduled_at_s: float | None = None  # open loop: when the schedule said to send it (same clock)

    @property
    def ttft_s(self) -> float:
        return self.first_token_at_s - self.sent_at_s

    @property
    def tpot_s(self) -> float | None:  # None for a one-token answer
        if self.tokens < 2:
            return None
        return (self.last_token_at_s - self.first_token_at_s) / (self.tokens - 1)

    @property
    def latency_s(self) -> float:
        return self.last_token_at_s - self.sent_at_s


@dataclass(frozen=True)
class LoadResult:
    """What one concurrency level measured."""

    concurrency: int
    requests: list[RequestResult]
    started_at_s: float  # time.monotonic when the first request was sent
    ended_at_s: float  # ... and when the last one finished

    @property
    def wall_s(self) -> float:
        return self.ended_at_s - self.started_at_s

    @property
    def ttft_ms(self) -> float:
        return 1e3 * sum(r.ttft_s for r in self.requests) / len(self.requests)

    @property
    def tpot_ms(self) -> float:
        gaps = [r.tpot_s for r in self.requests if r.tpot_s is not None]
        return 1e3 * sum(gaps) / len(gaps) if gaps else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return sum(r.tokens for r in self.requests) / self.wall_s


def check_url(url: str) -> str:
    """The server's base URL (scheme and host required), without a trailing slash or /v1."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InputError("--url: give the server's address, such as http://localhost:8000")
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError as exc:
        raise InputError(f"--url: '{url[:200]}' is not a valid address ({exc})") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise InputError(f"--url: '{url[:200]}' is not an http(s) address such as http://localhost:8000")
    try:
        parsed.port
    except ValueError:
        raise InputError(f"--url: '{url[:200]}' has a port that is not a number from 0 to 65535") from None
    base = url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


async def _served_model(client: Any, base: str) -> str:
    """The model name the server serves (GET /v1/models); the requests must name it."""
    resp = await client.get(f"{base}/v1/models")
    if resp.status_code != 200:
        raise BenchError(f"{base}/v1/models answered HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        return resp.json()["data"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BenchError(f"{base}/v1/models did not list a model: {resp.text[:200]}") from None


async def _one(client: Any, base: str, model: str, prompt: list[int], *, osl: int, request_id: str) -> RequestResult:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": osl,
        "min_tokens": osl,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    first = last = None
    chunks = 0
    usage = None
    start = time.monotonic()
    async with client.stream("POST", f"{base}/v1/completions", json=body, headers={"X-Request-Id": request_id}) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode(errors="replace")[:200]
            raise BenchError(f"{base}/v1/completions answered HTTP {resp.status_code}: {text}")
        async for line in resp.aiter_lines():
            data = _sse_data(line, base)
            if data is None:
                continue
            if data == "[DONE]":
                break
            if data.get("choices"):
                now = time.monotonic()
                first = first if first is not None else now
                last, chunks = now, chunks + 1
            usage = data.get("usage") or usage
    if first is None or last is None:
        raise BenchError(f"{base}: the stream ended before any token")
    tokens = count_tokens(usage, chunks, osl, base)
    return RequestResult(
        request_id=request_id, sent_at_s=start, first_token_at_s=first, last_token_at_s=last, tokens=tokens
    )


def count_tokens(usage: Any, chunks: int, osl: int, base: str) -> int:
    """The tokens one streamed answer holds, read like user input: the server's usage report (where it sends one)
    must be a whole number, and the answer must be the `osl` tokens asked for (`min_tokens`, `ignore_eos`) in at
    least two chunks; a stream cut short or a count that is negative, absurd or text is not a measurement."""
    reported = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if reported is not None and (isinstance(reported, bool) or not isinstance(reported, int)):
        raise BenchError(f"{base}: the server's usage.completion_tokens is {str(reported)[:40]!r}, not a whole number")
    tokens = chunks if reported is None else reported
    if tokens != osl:
        how = "ended after" if 0 <= tokens < osl else "reported"
        raise BenchError(
            f"{base}: the answer {how} {tokens:,} tokens of the {osl:,} asked for (min_tokens, "
            "ignore_eos); a cut-off or miscounted stream is not a measurement"
        )
    if osl > 1 and chunks < 2:
        raise BenchError(f"{base}: the server sent all {osl:,} tokens in {chunks} chunk; TPOT needs them streamed")
    return tokens


def _sse_data(line: str, base: str) -> Any:
    """The JSON (or "[DONE]") of one server-sent-events line; None for blank and comment lines."""
    line = line.strip()
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return payload
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        raise BenchError(f"{base}: the stream sent something that is not JSON: {payload[:120]}") from None
    if isinstance(data, dict) and data.get("error"):
        raise BenchError(f"{base}: the server failed mid-stream: {str(data['error'])[:200]}")
    return data if isinstance(data, dict) else None


def _one_line(exc: Exception, base: str) -> Exception:
    """An httpx failure as one BenchError line; any other exception (a BenchError already) as it is."""
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return BenchError(f"cannot reach {base}: {exc}; is the server up?")
    if isinstance(exc, httpx.TimeoutException):
        return BenchError(f"{base} did not answer within {READ_TIMEOUT_S:g} s")
    if isinstance(exc, httpx.HTTPError):
        return BenchError(f"{base}: {type(exc).__name__}: {str(exc)[:200]}")
    if isinstance(exc, (httpx.InvalidURL, ValueError)) and not isinstance(exc, BenchError):
        return BenchError(f"--url: '{base[:200]}' is not a valid address ({str(exc)[:120]})")
    return exc


async def run_load(
    url: str,
    concurrency: int,
    requests: int,
    isl: int,
    osl: int,
    *,
    vocab: int,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Keep `concurrency` requests in flight until `requests` have finished."""
    import httpx

    base = check_url(url)

    def prompt(k: int) -> list[int]:  # made when sent: memory holds the prompts in flight, not every request's
        rng = random.Random(seed * 1_000_003 + k)
        return [rng.randrange(1, max(2, vocab)) for _ in range(isl)]

    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    limits = httpx.Limits(max_connections=concurrency + 1)
    results: list[RequestResult] = []
    try:
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            model = await _served_model(client, base)
            queue = list(range(requests))
            start = time.monotonic()

            async def worker() -> None:
                while queue:
                    k = queue.pop()
                    results.append(
                        await _one(
                            client, base, model, prompt(k), osl=osl, request_id=f"planner-bench-c{concurrency}-{k}"
                        )
                    )
                    if progress is not None:
                        progress(len(results))

            await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
            end = time.monotonic()
    except Exception as exc:
        raise _one_line(exc, base) from None
    return LoadResult(concurrency, results, started_at_s=start, ended_at_s=end)


@dataclass(frozen=True)
class Arrival:
    """One request of an open-loop schedule: when to send it (seconds after the run starts) and its lengths."""

    at_s: float
    isl: int
    osl: int


@dataclass(frozen=True)
class OpenLoopResult:
    """What one request rate measured."""

    request_rate: float
    requests: list[RequestResult]
    started_at_s: float  # time.monotonic at the schedule's zero
    ended_at_s: float  # ... and when the last request finished

    @property
    def wall_s(self) -> float:
        return self.ended_at_s - self.started_at_s


def poisson_schedule(rate_per_s: float, n: int, *, seed: int) -> list[float]:
    """Send times (seconds from the start) of `n` Poisson arrivals at `rate_per_s`: the first at 0, then gaps
    drawn from the exponential distribution of mean 1 / rate (vLLM's benchmark_serving draws them the same way)."""
    rng = random.Random(f"arrivals-{seed}")
    times, t = [], 0.0
    for k in range(n):
        if k:
            t += rng.expovariate(rate_per_s)
        times.append(t)
    return times


def _raise_failed(tasks: list[asyncio.Task]) -> None:
    """A finished request that failed stops the run at once (its error, not a later timeout)."""
    for t in tasks:
        if t.done() and not t.cancelled() and (exc := t.exception()) is not None:
            raise exc


async def _send_schedule(
    client: Any,
    base: str,
    model: str,
    *,
    arrivals: list[Arrival],
    prompt: Callable[[int, int], list[int]],
    max_in_flight: int,
    rate: float,
    progress: Callable[[int], None] | None,
) -> tuple[float, list[RequestResult]]:
    start = time.monotonic()
    tasks: list[asyncio.Task] = []
    live: set[asyncio.Task] = set()
    done: list[RequestResult] = []

    async def one(k: int, a: Arrival) -> RequestResult:
        r = await _one(client, base, model, prompt(k, a.isl), osl=a.osl, request_id=f"planner-bench-r{rate:g}-{k}")
        done.append(r)
        if progress is not None:
            progress(len(done))
        return replace(r, scheduled_at_s=start + a.at_s)

    try:
        for k, a in enumerate(arrivals):
            await asyncio.sleep(max(0.0, start + a.at_s - time.monotonic()))
            _raise_failed(tasks)
            if len(live) >= max_in_flight:
                raise BenchError(
                    f"--max-in-flight: {len(live):,} requests were still in flight when request "
                    f"{k + 1:,} was due at {rate:g} requests/s: the server does not keep up with this "
                    "rate (lower --request-rate, or raise --max-in-flight)"
                )
            task = asyncio.create_task(one(k, a))
            live.add(task)
            task.add_done_callback(live.discard)
            tasks.append(task)
        return start, list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_open_loop(
    url: str,
    rate: float,
    arrivals: list[Arrival],
    *,
    vocab: int,
    seed: int = 0,
    max_in_flight: int,
    progress: Callable[[int], None] | None = None,
) -> OpenLoopResult:
    """Send each request at its time in `arrivals`, whatever is in flight, up to `max_in_flight` at once."""
    import httpx

    base = check_url(url)

    def prompt(k: int, isl: int) -> list[int]:
        rng = random.Random(seed * 1_000_003 + k)
        return [rng.randrange(1, max(2, vocab)) for _ in range(isl)]

    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    limits = httpx.Limits(max_connections=max_in_flight + 1)
    try:
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            model = await _served_model(client, base)
            start, results = await _send_schedule(
                client,
                base,
                model,
                arrivals=arrivals,
                prompt=prompt,
                max_in_flight=max_in_flight,
                rate=rate,
                progress=progress,
            )
            end = time.monotonic()
    except Exception as exc:
        raise _one_line(exc, base) from None
    return OpenLoopResult(rate, results, started_at_s=start, ended_at_s=end)
