"""What compression buys at serving time: the paper's source and target networks side by side, and the
miniature's, each target as ratios to its source.

    BN-Inception-512 -> BN-Inception-64              (the paper's dimensionality reduction)
    ResNet-50-512    -> ResNet-18-128                (the paper's compression)
    EfficientNet-Lite2-512 -> Lite0-128, Lite0-64    (the miniature's compression and the demo's target)

Per network, at --crop-size (224): parameters the embedding uses (the unused ImageNet classifier
left out, as an export leaves it out), the checkpoint's and the ONNX file's size, CPU latency per
image at batch 1 and images/s at batch 32, in PyTorch and in onnxruntime (the fastest of --repeats
runs after one warm-up, on --threads threads, one by default). Per embedding size: bytes per
gallery item in float32 and float16, the memory of an index of --items (1M) items, the exact search
time per query over them (code/embedding_transfer/query_gallery.py's blocked scan, a batch of --queries queries,
k = 10), and faiss IVF's (build time, search time per query, recall@10 against the exact search;
--skip-faiss to leave it out).

Weights are random (the timings do not depend on them; no ImageNet download needed). The 1M gallery
is synthetic: points around 20,000 centres on the sphere, so that IVF's cells mean something, as
with real embeddings of many classes; IVF's recall on real embeddings will differ.

    python benchmarks/bench_deploy.py [--repeats 2] [--items 1000000] [--queries 100] [--threads 1]
                                      [--groups paper,mini] [--skip-faiss] [--markdown FILE] [--json FILE]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))
from embedding_transfer.deploy.exporters import export  # noqa: E402
from embedding_transfer.deploy.faiss_index import DEFAULT_NPROBE  # noqa: E402
from embedding_transfer.deploy.network import EmbeddingOnly, embed_torch, inference_parameters  # noqa: E402
from embedding_transfer.deploy.runners import OnnxRunner  # noqa: E402
from embedding_transfer.models import build_model, weights_record  # noqa: E402
from embedding_transfer.query_gallery import nearest_gallery  # noqa: E402
from embedding_transfer.storage import save_json  # noqa: E402

GROUPS = {
    "paper": [("BN-Inception dim. reduction", ("bn_inception", 512), [("bn_inception", 64)]),
              ("ResNet compression", ("resnet50", 512), [("resnet18", 128)])],
    "mini": [("miniature (EfficientNet-Lite)", ("efficientnet_lite2", 512),
              [("efficientnet_lite0", 128), ("efficientnet_lite0", 64)])],
}
K = 10


def best_time(fn, repeats):
    """The fastest of `repeats` runs after one warm-up (allocations, onnxruntime's first-run setup):
    on a shared machine other processes only ever add time."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure_network(arch, dim, args, folder):
    torch.manual_seed(0)
    net = build_model(arch, dim, l2_norm=True).eval()
    module = EmbeddingOnly(net).eval()
    ckpt, onnx_path = os.path.join(folder, f"{arch}_{dim}.pth"), os.path.join(folder, f"{arch}_{dim}.onnx")
    torch.save(weights_record(net), ckpt)
    export(module, "onnx", args.crop_size, onnx_path)
    one = np.random.default_rng(0).standard_normal((1, 3, args.crop_size, args.crop_size), dtype=np.float32)
    many = np.repeat(one, 32, axis=0)
    row = {"net": f"{arch}-{dim}", "dim": dim, "params": inference_parameters(net),
           "pth_mb": os.path.getsize(ckpt) / 2**20, "onnx_mb": os.path.getsize(onnx_path) / 2**20}
    # PyTorch first, onnxruntime after: onnxruntime's threads keep spinning for a while after each
    # run, and would slow PyTorch down if its session existed meanwhile.
    engines = (("torch", lambda: (lambda x: embed_torch(module, x))),
               ("ort", lambda: OnnxRunner(onnx_path, threads=args.threads).embed))
    for name, make in engines:
        run = make()
        row[f"{name}_ms1"] = 1000 * best_time(lambda: run(one), args.repeats)
        row[f"{name}_ips32"] = 32 / best_time(lambda: run(many), args.repeats)
        del run
    print(f"  {row['net']}: {row['params'] / 1e6:.2f} M params, batch 1 {row['torch_ms1']:.1f} ms (torch) / "
          f"{row['ort_ms1']:.1f} ms (ort), batch 32 {row['torch_ips32']:.1f} / {row['ort_ips32']:.1f} images/s",
          flush=True)
    return row


def synthetic_gallery(n, d, seed=0, centres=20000):
    g = torch.Generator().manual_seed(seed)
    c = torch.nn.functional.normalize(torch.randn(centres, d, generator=g), dim=1)
    X = torch.empty(n, d)
    for lo in range(0, n, 100000):                       # in slices: bounded temporaries
        hi = min(lo + 100000, n)
        noise = torch.randn(hi - lo, d, generator=g) * (0.5 / d ** 0.5)
        X[lo:hi] = c[torch.randint(centres, (hi - lo,), generator=g)] + noise
    return torch.nn.functional.normalize(X, dim=1, out=X)


def measure_search(d, args):
    X = synthetic_gallery(args.items + args.queries, d)
    G, Q = X[:args.items], X[args.items:].clone()
    row = {"dim": d, "bytes32": 4 * d, "bytes16": 2 * d, "index32_mb": args.items * 4 * d / 2**20,
           "index16_mb": args.items * 2 * d / 2**20}
    t = best_time(lambda: nearest_gallery(Q, G, K), max(1, args.repeats - 1))
    row["exact_ms"] = 1000 * t / args.queries
    if not args.skip_faiss:
        import faiss
        from embedding_transfer.deploy.faiss_index import build_ivf, recall_against_exact, search_ivf
        faiss.omp_set_num_threads(args.threads)
        exact = nearest_gallery(Q, G, K)[1].numpy()
        t0 = time.perf_counter()
        index = build_ivf(G.numpy(), nlist=args.nlist)
        row["ivf_build_s"] = time.perf_counter() - t0
        t = best_time(lambda: search_ivf(index, Q.numpy(), K, DEFAULT_NPROBE), max(1, args.repeats - 1))
        row["ivf_ms"] = 1000 * t / args.queries
        row["ivf_recall"] = recall_against_exact(search_ivf(index, Q.numpy(), K, DEFAULT_NPROBE)[1], exact)
        del index
    print(f"  {d}-d, {args.items} items: exact {row['exact_ms']:.2f} ms/query"
          + ("" if args.skip_faiss else f", IVF {row['ivf_ms']:.3f} ms/query, recall@{K} {row['ivf_recall']:.3f}"),
          flush=True)
    return row


def rows_of(items):
    """(label, key, format): the rows of each setting's table."""
    n = f"{items / 1e6:g}M" if items >= 1e6 else f"{items:,}"
    return [("parameters (M)", "params", lambda v: f"{v / 1e6:.2f}"),
        ("checkpoint file (MB)", "pth_mb", "{:.1f}".format), ("ONNX file (MB)", "onnx_mb", "{:.1f}".format),
        ("PyTorch, ms per image at batch 1", "torch_ms1", "{:.1f}".format),
        ("onnxruntime, ms per image at batch 1", "ort_ms1", "{:.1f}".format),
        ("PyTorch, images/s at batch 32", "torch_ips32", "{:.1f}".format),
        ("onnxruntime, images/s at batch 32", "ort_ips32", "{:.1f}".format),
        ("bytes per gallery item, float32", "bytes32", "{:d}".format),
        ("bytes per gallery item, float16", "bytes16", "{:d}".format),
        (f"index of {n} items, float32 (MB)", "index32_mb", "{:.0f}".format),
        (f"index of {n} items, float16 (MB)", "index16_mb", "{:.0f}".format),
        (f"exact search, ms per query over {n}", "exact_ms", "{:.2f}".format),
        (f"faiss IVF search, ms per query over {n}", "ivf_ms", "{:.3f}".format),
        (f"faiss IVF recall@{K} against exact", "ivf_recall", "{:.3f}".format)]


def table(groups, nets, search, items):
    """One Markdown table per setting: a row per measurement, the source, then each target with its
    ratio to the source."""
    out = []
    for title, src, tgts in groups:
        cols = [src] + tgts
        rows = {key: {**nets[key], **search[key[1]]} for key in cols}
        names = [f"{rows[src]['net']} (source)"] + [rows[t]["net"] for t in tgts]
        lines = [f"**{title}**", "", "| | " + " | ".join(names) + " |", "|---" * (len(cols) + 1) + "|"]
        for label, key, fmt in rows_of(items):
            if key not in rows[src]:
                continue
            cells = [fmt(rows[src][key])]
            for t in tgts:
                ratio = "" if key == "ivf_recall" else f" ({rows[t][key] / rows[src][key]:.2f}x)"
                cells.append(fmt(rows[t][key]) + ratio)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", default="paper,mini", help="comma-separated: " + ", ".join(GROUPS))
    p.add_argument("--crop-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--items", type=int, default=1_000_000, help="gallery size of the search measurements")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--nlist", type=int, default=1024, help="faiss IVF cells")
    # One thread by default: on a machine shared with other work, PyTorch's two OpenMP threads wait on
    # each other at every layer (13x slower than one thread when measured so here); one core's cost
    # is also what scales to a server's many single-threaded workers.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-faiss", action="store_true")
    p.add_argument("--markdown", default="", help="also write the table to this file")
    p.add_argument("--json", default="", help="also write the measurements to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    groups = [g for name in args.groups.split(",") for g in GROUPS[name]]
    t_start = time.perf_counter()
    nets, search = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        print(f"networks at {args.crop_size} px, {args.threads} threads, best of {args.repeats}:", flush=True)
        for _, src, tgts in groups:
            for arch, dim in [src] + tgts:
                if (arch, dim) not in nets:
                    nets[(arch, dim)] = measure_network(arch, dim, args, folder)
    print(f"search over {args.items} items:", flush=True)
    for d in sorted({dim for _, dim in nets}):
        search[d] = measure_search(d, args)
    text = table(groups, nets, search, args.items)
    if args.json:
        save_json({"nets": {f"{a}-{d}": v for (a, d), v in nets.items()}, "search": search, "args": vars(args)},
                  args.json)
    note = (f"\n\n{args.crop_size} px; {args.threads} threads; fastest of {args.repeats} runs; search: "
            f"{args.queries} queries, k = {K}, {args.items} synthetic items"
            + ("" if args.skip_faiss else f", IVF {args.nlist} cells, nprobe {DEFAULT_NPROBE}")
            + "; (ratio to the source).")
    print("\n" + text + note + f"\n({time.perf_counter() - t_start:.0f} s)")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + note + "\n")


if __name__ == "__main__":
    main()
