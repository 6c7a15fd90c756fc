"""Micro-benchmark of the tree store's chunkers (pure Python): MB/s on random and JSON-like data.

    .venv/bin/python bench/chunker.py [--mb 16]

Cuts the input read in 1 MiB pieces (as a file is read). Prints one line per chunker and
input: throughput, chunk count and mean size. Not a test.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from swarm.repo.chunker import FastCDC, FixedChunker


def json_like(n: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b'{"id": %d, "pipeline": "p-%d", "status": "succeeded", "payload": {"rows": %d}}\n' % (
            i, i * 7 % 1000, i * 13)
        i += 1
    return bytes(out[:n])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=16)
    args = ap.parse_args()
    n = args.mb << 20
    inputs = {"random": random.Random(0).randbytes(n), "json": json_like(n)}
    chunkers = {"fastcdc 16K+32K (state)": FastCDC.for_key(os.urandom(32)), "fixed 32K (physical)": FixedChunker(32768)}
    for cname, c in chunkers.items():
        for iname, data in inputs.items():
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                sizes = [len(x) for x in c.chunks(data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20))]
                best = min(best, time.perf_counter() - t)
            print(f"{cname:26s} {iname:7s} {len(data) / 1e6 / best:9.1f} MB/s  {len(sizes):6d} chunks  "
                  f"mean {statistics.mean(sizes) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
