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


def bare_product(X, block=4096):
    """The unavoidable work: every entry of X @ X.T, in 4096-row blocks (1 GB each at SOP scale):
    as fast here as one full product, which would need 14.6 GB."""
    for lo in range(0, X.shape[0], block):
        X[lo:lo + block] @ X.T


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

    # Product, recall, product: the faster product is the floor (guards against drifting clocks).
    t_prod = []
    for step in range(3):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            if step == 1:
                r = recall_at_k(X, T, ks, chunk_size=args.chunk)
            else:
                bare_product(X)
            t = time.perf_counter() - t0
        if step == 1:
            t_rec, mem_r = t, mem
        else:
            t_prod.append(t)
            mem_p = mem
    t_prod = min(t_prod)
    print("recall: " + ", ".join(f"R@{k}={v:.4f}" for k, v in zip(ks, r)))
    print(f"bare product X @ X.T: {t_prod:7.2f} s   peak extra memory {mem_p.extra:7.0f} MB (faster of two runs)")
    print(f"recall_at_k:          {t_rec:7.2f} s   peak extra memory {mem_r.extra:7.0f} MB")
    print(f"ratio: {t_rec / t_prod:.2f}  (goal <= 1.3, extra memory <= 2048 MB)")


if __name__ == "__main__":
    main()
