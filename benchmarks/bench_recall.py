"""Evaluation cost against the floor, the bare product X @ X.T, at two sizes (dim 512 by default):

    20,000 x 512, 60 items a class (CUB-200 / Cars-196-like classes: R = 59), K = 1, 2, 4, 8
    60,502 x 512, ~5.35 items a class (SOP-like: ~11,300 classes of 1 to 16), K = 1, 10, 100, 1000

Labels are either balanced (every class the same size, as in CUB's test set) or drawn at random
(class sizes spread around the mean, here more widely than SOP's 2 to 12; the largest class sets the
size of MAP@R's top-R search), and embeddings are class centres plus noise, so that the metrics are
neither 0 nor 1. For each size it times, alternating in the same run, the bare product (the floor:
the faster of 2048- and 4096-row blocks), (a) Recall@K alone (recall_at_k) and (b) the whole
evaluation, Recall@K + MAP@R + R-Precision in one pass (retrieval_metrics); with --separate also
(c) recall_at_k followed by map_at_r (two passes). Each is timed --repeats times and the fastest
run of each is kept (the machine may be shared: noise only ever adds time). Prints the ratios to
the floor and the peak extra memory of each.
Goal (issue 11): whole evaluation <= 1.3 x the product at both sizes, with at most 2 GB extra memory.

    python benchmarks/bench_recall.py [--sizes N:ITEMS_A_CLASS:NOISE:K,K,...:balanced|random ...]
                                      [--dim 512] [--repeats 3] [--chunk ROWS] [--separate]
"""
import argparse
import os
import resource
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))
from embedding_transfer.metrics import DEFAULT_CHUNK, map_at_r, recall_at_k, retrieval_metrics  # noqa: E402


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
    """The unavoidable work: every entry of X @ X.T, in row blocks written into one reused buffer
    (1 GB at SOP scale for 4096 rows): as fast here as one full product, which would need 14.6 GB,
    and not slowed by allocating (page-faulting) a fresh block each time. The buffer's rows are
    64-byte aligned (padded to a multiple of 16 columns): at N = 60,502 unaligned rows make the
    product a third slower."""
    n = X.shape[0]
    out = torch.empty(min(block, n), -(-n // 16) * 16, dtype=X.dtype)
    for lo in range(0, n, block):
        torch.matmul(X[lo:lo + block], X.T, out=out[:min(block, n - lo), :n])


def data(n, dim, per_class, noise, balanced, seed=0):
    g = torch.Generator().manual_seed(seed)
    classes = max(1, round(n / per_class))
    if balanced:
        T = torch.randperm(n, generator=g) % classes
    else:
        T = torch.randint(0, classes, (n,), generator=g)
    # Class centres plus noise, so that the metrics are neither 0 nor 1.
    X = torch.randn(classes, dim, generator=g)[T] + noise * torch.randn(n, dim, generator=g)
    return X, T, classes


def run_size(n, dim, per_class, noise, balanced, ks, repeats, chunk, separate):
    X, T, classes = data(n, dim, per_class, noise, balanced)
    sizes = torch.bincount(T)
    sizes = sizes[sizes > 0]
    print(f"\nN={n} dim={dim} classes={classes} (items a class: mean {n / len(sizes):.2f}, "
          f"min {int(sizes.min())}, max {int(sizes.max())}) noise={noise} K={ks} chunk={chunk or 'auto'} "
          f"threads={torch.get_num_threads()}")
    jobs = {
        "bare product, 4096 rows": lambda: bare_product(X, 4096),
        "bare product, 2048 rows": lambda: bare_product(X, 2048),
        "(a) recall_at_k": lambda: recall_at_k(X, T, ks, chunk_size=chunk),
        "(b) retrieval_metrics": lambda: retrieval_metrics(X, T, ks, chunk_size=chunk),
    }
    if separate:
        jobs["(c) recall_at_k + map_at_r"] = lambda: (recall_at_k(X, T, ks, chunk_size=chunk),
                                                      map_at_r(X, T, chunk_size=chunk))
    times = {name: [] for name in jobs}
    mem = {}
    results = {}
    # Alternate: product, (a), (b), [(c)], product, ... so that a slow spell of the machine hits all.
    for _ in range(repeats):
        for name, job in jobs.items():
            with PeakRSS() as m:
                t0 = time.perf_counter()
                results[name] = job()
                times[name].append(time.perf_counter() - t0)
            mem[name] = max(mem.get(name, 0.0), m.extra)
    recalls, mapr, rp = results["(b) retrieval_metrics"]
    assert recalls == results["(a) recall_at_k"]
    print("metrics: " + ", ".join(f"R@{k}={v:.4f}" for k, v in zip(ks, recalls)) + f", MAP@R={mapr:.4f}, RP={rp:.4f}")
    floor = min(min(ts) for name, ts in times.items() if name.startswith("bare"))
    for name, ts in times.items():
        best = min(ts)
        runs = " ".join(f"{t:.2f}" for t in ts)
        print(f"{name:28s} {best:7.2f} s  ratio {best / floor:5.2f}  peak extra memory {mem[name]:6.0f} MB"
              f"   (runs: {runs})")
    return {name: min(ts) / floor for name, ts in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+",
                    default=["20000:60:3:1,2,4,8:balanced", "60502:5.35:2:1,10,100,1000:random"],
                    help="N:items a class:noise:K list:balanced or random class sizes (default: "
                         "20000:60:3:1,2,4,8:balanced 60502:5.35:2:1,10,100,1000:random)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="rows per chunk (default: automatic)")
    ap.add_argument("--separate", action="store_true", help="also time recall_at_k followed by map_at_r")
    args = ap.parse_args()
    summary = []
    for size in args.sizes:
        n, per_class, noise, ks, sizes = size.split(":")
        if sizes not in ("balanced", "random"):
            ap.error(f"class sizes must be balanced or random, not {sizes!r}")
        ks = [int(k) for k in ks.split(",")]
        ratios = run_size(int(n), args.dim, float(per_class), float(noise), sizes == "balanced", ks,
                          args.repeats, args.chunk, args.separate)
        summary.append((int(n), ratios))
    print("\nratio to the bare product (goal: whole evaluation <= 1.3, extra memory <= 2048 MB)")
    for n, ratios in summary:
        print(f"  N={n:6d}: " + ", ".join(f"{name.split(' ', 1)[0]} {r:.2f}" for name, r in ratios.items()
                                        if not name.startswith("bare")))


if __name__ == "__main__":
    main()
