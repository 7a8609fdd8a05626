"""classes.tsv, the manifest that code/embedding_transfer/dataset/emoji.py reads (`read_manifest`, re-exported)."""
import os

from embedding_transfer.dataset.emoji import MANIFEST, emoji_dir, read_manifest  # noqa: F401

from .keys import key_to_text, sort_key


def write_manifest(root, results, vendors, sources):
    """results: {key: [vendors that drew it]}; vendors: the header's list; sources: {vendor: text}.

    Written to a temporary name and renamed, so that a complete manifest means complete images."""
    tmp = os.path.join(root, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# vendors: {','.join(vendors)}\n")
        f.write(f"# sources: {'; '.join(sources[v] for v in vendors)}\n")
        f.write("key\temoji\tvendors\tpaths\n")
        for key in sorted(results, key=sort_key):
            vs = results[key]
            paths = ",".join(f"images/{key}/{v}.png" for v in vs)
            f.write(f"{key}\t{key_to_text(key)}\t{','.join(vs)}\t{paths}\n")
    os.replace(tmp, os.path.join(root, MANIFEST))


def vendor_counts(rows):
    """{number of vendors: number of classes}."""
    out = {}
    for _, vs, _ in rows:
        out[len(vs)] = out.get(len(vs), 0) + 1
    return out


def summarize(rows, vendors):
    """Human-readable counts: classes in total, per number of vendors, images per vendor."""
    per_vendor = {v: 0 for v in vendors}
    for _, vs, _ in rows:
        for v in vs:
            per_vendor[v] = per_vendor.get(v, 0) + 1
    parts = [f"{len(rows)} classes"]
    parts += [f"{n} with {k} vendors" for k, n in sorted(vendor_counts(rows).items(), reverse=True)]
    parts += [f"{v}: {n} images" for v, n in per_vendor.items()]
    return ", ".join(parts)
