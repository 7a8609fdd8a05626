"""Recall@K at SOP scale (60,502 x 512 by default) against the floor: the bare product X @ X.T.

Prints both times measured in the same run, their ratio and the peak extra memory of each.
Goal (issue 2): ratio <= 1.3 with at most 2 GB of extra memory.

    python benchmarks/bench_recall.py [--n 60502] [--dim 512] [--chunk 256]
"""
import argparse
import os
import resource
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))
from metrics import DEFAULT_CHUNK, recall_at_k  # noqa: E402


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Samples the resident set size every few ms while the block runs."""

    def __enter__(self):
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.extra = self.peak - self.base


def bare_product(X, chunk):
    """The unavoidable work: every row of X @ X.T, computed in the same row chunks."""
    for lo in range(0, X.shape[0], chunk):
        X[lo:lo + chunk] @ X.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60502)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=11316)
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    args = ap.parse_args()

    g = torch.Generator().manual_seed(0)
    T = torch.randint(0, args.classes, (args.n,), generator=g)
    # Class centres plus noise, so that recall is neither 0 nor 1.
    X = torch.randn(args.classes, args.dim, generator=g)[T] + 1.5 * torch.randn(args.n, args.dim, generator=g)
    ks = [1, 10, 100, 1000]
    print(f"N={args.n} dim={args.dim} classes={args.classes} chunk={args.chunk} threads={torch.get_num_threads()}")

    with PeakRSS() as mem_p:
        t0 = time.perf_counter()
        bare_product(X, args.chunk)
        t_prod = time.perf_counter() - t0
    with PeakRSS() as mem_r:
        t0 = time.perf_counter()
        r = recall_at_k(X, T, ks, chunk_size=args.chunk)
        t_rec = time.perf_counter() - t0
    print("recall: " + ", ".join(f"R@{k}={v:.4f}" for k, v in zip(ks, r)))
    print(f"bare product X @ X.T: {t_prod:7.2f} s   peak extra memory {mem_p.extra:7.0f} MB")
    print(f"recall_at_k:          {t_rec:7.2f} s   peak extra memory {mem_r.extra:7.0f} MB")
    print(f"ratio: {t_rec / t_prod:.2f}  (goal <= 1.3, extra memory <= 2048 MB)")


if __name__ == "__main__":
    main()
