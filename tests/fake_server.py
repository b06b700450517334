"""A fake OpenAI-compatible streaming server (a small Starlette ASGI app run by uvicorn) with known
token timings, for `planner bench`'s tests: the first token after `ttft_s`, then one every `gap_s`; or, with
`ttft_max_s` / `gap_max_s`, a TTFT and a gap per request drawn uniformly from [ttft_s, ttft_max_s] and
[gap_s, gap_max_s] by a generator seeded with `seed` and the request's X-Request-Id (`request_timing`), so that
a test knows each request's schedule without asking the server.

On a busy machine the server keeps its schedule only approximately, so it also writes down what it did: with a
`log` file, one JSON line per request with the time it arrived and the time each token left (time.monotonic),
against which the tests hold what the client measured."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@dataclass
class Behaviour:
    ttft_s: float = 0.2
    gap_s: float = 0.02
    fail_after: int | None = None  # tokens streamed before an error event
    status: int = 200
    stop_after: int | None = None  # tokens streamed before the stream ends cleanly (a cut-off answer)
    usage: str = ""  # the usage report's completion_tokens as JSON text ("" reports the tokens streamed)
    ttft_max_s: float | None = None  # a TTFT per request, uniform in [ttft_s, ttft_max_s]
    gap_max_s: float | None = None  # a gap per request, uniform in [gap_s, gap_max_s]
    seed: int = 0


def request_timing(b: Behaviour, request_id: str) -> tuple[float, float]:
    """The TTFT and the gap between tokens (seconds) the server schedules for one request."""
    rng = random.Random(f"{b.seed}:{request_id}")
    ttft = b.ttft_s if b.ttft_max_s is None else rng.uniform(b.ttft_s, b.ttft_max_s)
    gap = b.gap_s if b.gap_max_s is None else rng.uniform(b.gap_s, b.gap_max_s)
    return ttft, gap


def served(log: Path) -> list[dict]:
    """What the server did, per request: {"id": X-Request-Id, "received": t, "sent": [t, ...]} (seconds,
    time.monotonic: the same clock as the bench client's samples on this host)."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def make_app(b: Behaviour, log: Path | None = None) -> Starlette:
    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    async def completions(request: Request):
        received = time.monotonic()
        request_id = request.headers.get("x-request-id", "")
        body = await request.json()
        if b.status != 200:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=b.status)
        n = int(body["max_tokens"])
        ttft_s, gap_s = request_timing(b, request_id)

        async def stream():
            # token k is due at start + ttft + k x gap: a schedule, so that event-loop jitter on a busy
            # machine delays one token without adding up over the stream
            start = time.monotonic()
            sent = []
            streamed = n if b.stop_after is None else min(n, b.stop_after)
            for k in range(streamed):
                await asyncio.sleep(max(0.0, start + ttft_s + k * gap_s - time.monotonic()))
                if b.fail_after is not None and k == b.fail_after:
                    yield f"data: {json.dumps({'error': {'message': 'engine died'}})}\n\n"
                    return
                sent.append(time.monotonic())
                yield f"data: {json.dumps({'choices': [{'index': 0, 'text': 'x'}]})}\n\n"
            if log is not None:
                with open(log, "a") as f:
                    f.write(
                        json.dumps(
                            {
                                "id": request_id,
                                "received": received,
                                "started": start,
                                "sent": sent,
                                "ttft_s": ttft_s,
                                "gap_s": gap_s,
                                "prompt_tokens": len(body["prompt"]),
                            }
                        )
                        + "\n"
                    )
            count = json.loads(b.usage) if b.usage else streamed
            yield f"data: {json.dumps({'choices': [], 'usage': {'completion_tokens': count}})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/completions", completions, methods=["POST"])])


class FakeServer:
    """Context manager: `with FakeServer(Behaviour()) as url: ...`. The server runs in its own process (so that its
    timings do not share the test's interpreter lock), which is stopped by its PID on exit."""

    def __init__(self, behaviour: Behaviour, log: Path | None = None):
        from tests.conftest import free_port

        self.port = free_port()
        self.behaviour = behaviour
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        b = self.behaviour
        args = [
            sys.executable,
            "-m",
            "tests.fake_server",
            str(self.port),
            str(b.ttft_s),
            str(b.gap_s),
            str(-1 if b.fail_after is None else b.fail_after),
            str(b.status),
            str(-1 if b.stop_after is None else b.stop_after),
            b.usage or "-",
            str(self.log or ""),
            str(-1 if b.ttft_max_s is None else b.ttft_max_s),
            str(-1 if b.gap_max_s is None else b.gap_max_s),
            str(b.seed),
        ]
        self.proc = subprocess.Popen(
            args, cwd=str(Path(__file__).resolve().parent.parent), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return url
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the fake server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


if __name__ == "__main__":
    port, ttft, gap, fail, status, stop, usage, log_path, ttft_max, gap_max, seed = sys.argv[1:12]
    behaviour = Behaviour(
        float(ttft),
        float(gap),
        None if int(fail) < 0 else int(fail),
        int(status),
        None if int(stop) < 0 else int(stop),
        "" if usage == "-" else usage,
        None if float(ttft_max) < 0 else float(ttft_max),
        None if float(gap_max) < 0 else float(gap_max),
        int(seed),
    )
    uvicorn.run(
        make_app(behaviour, Path(log_path) if log_path else None), host="127.0.0.1", port=int(port), log_level="error"
    )
