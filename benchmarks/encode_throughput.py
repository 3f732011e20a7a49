"""MiniLM encoding throughput on this machine: texts per second with 1 and 2 torch threads.

    PICKWISE_DATA=../shared/data .venv/bin/python benchmarks/encode_throughput.py [--n 600]

Encodes the first ``--n`` sms-spam training texts (batch size 16) after one warm-up batch; nothing
is cached, so every text goes through the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# benchmarks/select.py would shadow the standard library's select module
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    from pickwise.data import load
    from pickwise.encoders import SentenceEncoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="texts to encode (default: 600)")
    args = ap.parse_args()
    texts = load("sms-spam").x_train[: args.n]
    for threads in (1, 2):
        enc = SentenceEncoder(batch_size=16, n_threads=threads)
        enc.encode(texts[:32])  # loads the model
        t = time.perf_counter()
        enc.encode(texts)
        dt = time.perf_counter() - t
        print(f"{threads} thread(s): {len(texts) / dt:.0f} texts/s ({len(texts)} texts in {dt:.2f} s)")


if __name__ == "__main__":
    main()
