"""Latency of `cifake serve` under load: one large batch plus many small uploads at once.

For each --concurrency value (default: 1, the Gradio default, then cifake's 4), start `cifake serve`
in its own process on a free port, submit one request with --big images, then --small single-image requests at the same
moment through gradio_client, and print the median and 90th percentile of the small requests'
latency, and the big one's (the small ones are sent once the big one is being scored). Same images, same machine, same run.

    python scripts/bench_serve.py --small 50 --big 200
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_images(folder: Path, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{seed}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def one_round(concurrency: int, small: list[str], big: list[str]) -> dict:
    """Serve in a separate process (as a user runs it), so the client's threads do not share its GIL."""
    from gradio_client import Client, handle_file

    from cifake.tasks.serve import SHIPPED

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cifake", "serve", "--port", str(port), "--concurrency", str(concurrency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        server.stdout.readline()  # printed once the server listens
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)  # results stay served
        client.predict([handle_file(small[0])], SHIPPED, api_name="/run")  # warm-up: model loaded and traced
        t0 = time.perf_counter()
        jobs = [client.submit([handle_file(p) for p in big], SHIPPED, api_name="/run")]
        while jobs[0].status().code.name not in ("PROCESSING", "FINISHED"):  # the big batch is being scored
            time.sleep(0.01)
        jobs += [client.submit([handle_file(p)], SHIPPED, api_name="/run") for p in small]
        done: dict[int, float] = {}
        while len(done) < len(jobs):
            for i, job in enumerate(jobs):
                if i not in done and job.done():
                    job.result()  # raises if the request failed
                    done[i] = time.perf_counter() - t0
            time.sleep(0.01)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    lat = sorted(done[i] for i in range(1, len(jobs)))
    return {
        "concurrency": concurrency,
        "median": statistics.median(lat),
        "p90": lat[int(0.9 * (len(lat) - 1))],
        "big": done[0],
        "all": max(done.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=50, help="single-image requests sent at once")
    ap.add_argument("--big", type=int, default=200, help="images in the one large request sent first")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with tempfile.TemporaryDirectory() as tmp:
        small = make_images(Path(tmp), args.small, 0)
        big = make_images(Path(tmp), args.big, 1)
        print(f"{args.small} single-image requests + 1 request of {args.big} images, CPU threads {os.cpu_count()}")
        print(f"{'concurrency':>11}  {'small median':>12}  {'small p90':>9}  {'big':>6}  {'all done':>8}")
        for c in args.concurrency:
            r = one_round(c, small, big)
            print(
                f"{r['concurrency']:>11}  {r['median']:>11.2f}s  {r['p90']:>8.2f}s  {r['big']:>5.2f}s  {r['all']:>7.2f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
