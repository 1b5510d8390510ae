"""A load run from Python: ``python -m mcp_engine_client.bench --credentials
credentials.json``. Keeps ``--window`` calls of ``demo.echo`` in flight on
one connection (the asyncio client) for ``--duration`` seconds at each
level, and prints the calls per second and the latency percentiles, one
JSON line per level."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from .aio import AsyncClient
from .envelope import LEVELS


async def run_level(
    credentials: Path, level: str, duration: float, window: int, warmup: float
) -> dict[str, Any]:
    """One level's run: calls per second and latencies."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with AsyncClient.from_credentials(credentials, level=level) as client:
        await client.call("sys.ping")
        started = time.perf_counter()
        measuring_from = started + warmup
        ends = measuring_from + duration
        counted = 0

        async def worker(n: int) -> None:
            nonlocal counted
            while True:
                sent = time.perf_counter()
                if sent >= ends:
                    return
                try:
                    await client.call("demo.echo", {"n": n, "text": "x" * 32})
                except Exception as e:  # counted, the run goes on
                    code = getattr(e, "code", type(e).__name__)
                    errors[code] = errors.get(code, 0) + 1
                    continue
                done = time.perf_counter()
                if sent >= measuring_from and done <= ends:
                    counted += 1
                    latencies.append(done - sent)

        await asyncio.gather(*(worker(n) for n in range(window)))
    latencies.sort()

    def percentile(p: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6, 1)

    return {
        "level": level,
        "calls_per_s": round(counted / duration),
        "latency_us": {"p50": percentile(0.5), "p99": percentile(0.99)},
        "window": window,
        "errors": errors,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the bench; returns the exit code (1 if any call failed)."""
    parser = argparse.ArgumentParser(prog="python -m mcp_engine_client.bench")
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--levels", default="Standard,Critical")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--window", type=int, default=64)
    options = parser.parse_args(argv)
    failed = False
    for level in options.levels.split(","):
        if level not in LEVELS:
            parser.error(f"--levels: {level!r} is not one of {LEVELS}")
        report = asyncio.run(
            run_level(options.credentials, level, options.duration, options.window, options.warmup)
        )
        failed = failed or bool(report["errors"])
        print(json.dumps(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
