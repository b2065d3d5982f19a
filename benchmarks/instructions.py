"""Instructions per request: coop vs the bare aiohttp proxy, counted by callgrind.

    python benchmarks/instructions.py [--requests 500] [--connections 32]

req/s and CPU seconds on a shared 2-core machine move by tens of percent between runs;
instruction counts do not (repeat runs agree within ~2%), so this is how a change to the
request path is judged before `benchmarks/gateway.py` confirms it in req/s. Each server
runs under `valgrind --tool=callgrind` with collection zeroed after a warm-up
(`callgrind_control -z`); the load and the fake upstream run outside valgrind. Needs
valgrind (Debian: `apt-get install valgrind`). About 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _upstream import fake_upstream, free_port, wait_for_port
from gateway import BARE_PROXY, BODY, coop_config


async def load(url: str, count: int, connections: int) -> None:
    import aiohttp

    body = json.dumps(BODY).encode()
    left = count
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(
                    url, data=body, headers={"content-type": "application/json"}
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")

        await asyncio.gather(*(worker() for _ in range(connections)))


def instructions(cmd: list[str], port: int, folder: Path, requests: int, connections: int) -> int:
    """Instructions the server ran for ``requests`` requests after a warm-up."""
    out = folder / f"callgrind.{port}"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        wait_for_port(port, timeout=300)
        asyncio.run(load(url, 300, connections))
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        asyncio.run(load(url, requests, connections))
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted(folder.glob(f"callgrind.{port}.*"), key=os.path.getmtime)
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {cmd[0]}")
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp, fake_upstream() as upstream:
        folder = Path(tmp)
        script = folder / "bare_proxy.py"
        script.write_text(BARE_PROXY, encoding="utf-8")
        bare_port = free_port()
        bare = instructions(
            [sys.executable, str(script), upstream, str(bare_port)],
            bare_port,
            folder,
            args.requests,
            args.connections,
        )
        coop_port = free_port()
        config = coop_config(folder, upstream, coop_port)
        coop = instructions(
            [sys.executable, "-m", "coop", "serve", "--config", str(config)],
            coop_port,
            folder,
            args.requests,
            args.connections,
        )
    print(f"{args.requests} requests at {args.connections} connections, counted by callgrind")
    print(f"bare aiohttp proxy  {bare / args.requests:12,.0f} instructions/request")
    print(f"coop                {coop / args.requests:12,.0f} instructions/request")
    print(f"bare / coop         {bare / coop:12.0%}   (target: >= 50%)")


if __name__ == "__main__":
    main()
