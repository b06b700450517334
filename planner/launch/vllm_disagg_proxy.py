"""Prefill-then-decode proxy for vLLM instances that share KV through a connector (NixlConnector, kv_both).

Written next to the launch scripts of a disaggregated plan by `planner launch`; standard library only, so it runs
with any Python 3.9+. Each completion or chat request goes to the next prefill instance (round robin) with
`max_tokens` 1, no streaming and `kv_transfer_params.do_remote_decode`: that instance prefills the prompt, keeps its
KV for the decode side and answers with the `kv_transfer_params` that locate it. The request then goes to the next
decode instance with those `kv_transfer_params`; that instance pulls the KV and generates, and its answer (streamed
or not) is passed back unchanged.

    python vllm-disagg-proxy.py --port 8100 --prefill http://h0:8000 --decode http://h1:8001
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

ROUTES = ("/v1/completions", "/v1/chat/completions")
TIMEOUT_S = 3600.0
CHUNK_BYTES = 1 << 14


def prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    """The prefill leg: one token, no stream, and the connector told to keep the KV for a remote decode (a client's
    `min_tokens` above the leg's one token would be refused by vLLM, so it goes to the decode leg only)."""
    out = {k: v for k, v in body.items() if k not in ("stream_options", "max_completion_tokens", "min_tokens")}
    out.update(
        max_tokens=1,
        stream=False,
        kv_transfer_params={
            "do_remote_decode": True,
            "do_remote_prefill": False,
            "remote_engine_id": None,
            "remote_block_ids": None,
            "remote_host": None,
            "remote_port": None,
        },
    )
    return out


def decode_body(body: dict[str, Any], prefill_answer: dict[str, Any]) -> dict[str, Any]:
    """The decode leg: the client's request with the KV location the prefill instance answered."""
    return {**body, "kv_transfer_params": prefill_answer.get("kv_transfer_params")}


class Pools:
    """Round-robin choice of the next prefill and decode instance."""

    def __init__(self, prefill: list[str], decode: list[str]):
        self._prefill, self._decode = itertools.cycle(prefill), itertools.cycle(decode)
        self.first_decode = decode[0]
        self._lock = threading.Lock()

    def next_pair(self) -> tuple[str, str]:
        with self._lock:
            return next(self._prefill), next(self._decode)


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    return urllib.request.urlopen(req, timeout=TIMEOUT_S)


def _chunks(resp: Any) -> Iterator[bytes]:
    while chunk := resp.read1(CHUNK_BYTES) if hasattr(resp, "read1") else resp.read(CHUNK_BYTES):
        yield chunk


def handler(pools: Pools) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            return

        def _send(self, status: int, ctype: str, chunks: Iterator[bytes]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def _error(self, status: int, message: str) -> None:
            self._send(status, "application/json", iter([json.dumps({"error": message}).encode()]))

        def do_GET(self) -> None:
            try:
                with urllib.request.urlopen(pools.first_decode + self.path, timeout=TIMEOUT_S) as resp:
                    self._send(resp.status, resp.headers.get("Content-Type", "application/json"), _chunks(resp))
            except urllib.error.URLError as exc:
                self._error(502, f"decode instance: {exc}")

        def do_POST(self) -> None:
            if self.path not in ROUTES:
                self._error(404, f"{self.path}: this proxy serves {', '.join(ROUTES)}")
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            prefill, decode = pools.next_pair()
            try:
                with _post(prefill + self.path, prefill_body(body)) as resp:
                    answer = json.loads(resp.read())
                with _post(decode + self.path, decode_body(body, answer)) as resp:
                    self._send(resp.status, resp.headers.get("Content-Type", "application/json"), _chunks(resp))
            except urllib.error.HTTPError as exc:
                self._error(exc.code, exc.read().decode(errors="replace")[:2000])
            except urllib.error.URLError as exc:
                self._error(502, str(exc))

    return Handler


def serve(port: int, prefill: list[str], decode: list[str], host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """The proxy's server (not yet serving: call serve_forever)."""
    return ThreadingHTTPServer((host, port), handler(Pools(prefill, decode)))


def main() -> None:
    ap = argparse.ArgumentParser(description="prefill-then-decode proxy for vLLM with a KV connector")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--prefill", action="append", required=True, help="a prefill instance's URL (repeat)")
    ap.add_argument("--decode", action="append", required=True, help="a decode instance's URL (repeat)")
    args = ap.parse_args()
    serve(args.port, args.prefill, args.decode, args.host).serve_forever()


if __name__ == "__main__":
    main()
