"""A picture of retrieval: rows of query image, then its top-k neighbours, each framed green when
it shows the query's class and red when it does not (blue when the classes are unknown, as in a
gallery folder without class folders)."""
import PIL.Image
import PIL.ImageDraw
import torch

from ..dataset import load_image
from ..storage import save_file

GREEN, RED, GREY, WHITE = (40, 170, 60), (215, 40, 40), (120, 120, 120), (255, 255, 255)
BLUE = (60, 110, 200)   # a neighbour whose class is not known


def pick_queries(n_items, n, seed=0):
    """n distinct query indices drawn with a fixed seed (the same grid every time)."""
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed))[:min(n, n_items)].tolist()


def nearest_neighbours(X, queries, k):
    """(len(queries), k) indices of the k nearest items (Euclidean) to each query, itself excluded."""
    q = torch.as_tensor(queries)
    d = torch.cdist(X[q].double(), X.double())     # (n, N)
    d[torch.arange(len(q)), q] = float("inf")
    return d.topk(min(k, X.shape[0] - 1), dim=1, largest=False).indices


def _tile(path, size, border, color):
    im = load_image(path)
    im.thumbnail((size - 2 * border, size - 2 * border))
    tile = PIL.Image.new("RGB", (size, size), color)
    inner = PIL.Image.new("RGB", (size - 2 * border, size - 2 * border), WHITE)
    inner.paste(im, ((inner.width - im.width) // 2, (inner.height - im.height) // 2))
    tile.paste(inner, (border, border))
    return tile


def draw_grid(paths, labels, queries, neighbours, out, size=96, border=5, gap=12):
    """Save the grid as PNG: one row per query (grey frame), then its neighbours framed GREEN
    (same label) or RED (other label); labels None: BLUE frames. Returns the path."""
    k = neighbours.shape[1]
    width, height = size * (k + 1) + gap, size * len(queries)
    canvas = PIL.Image.new("RGB", (width, height), WHITE)
    for row, (q, nn) in enumerate(zip(queries, neighbours.tolist())):
        y = row * size
        canvas.paste(_tile(paths[q], size, border, GREY), (0, y))
        for col, j in enumerate(nn):
            color = BLUE if labels is None else GREEN if labels[j] == labels[q] else RED
            canvas.paste(_tile(paths[j], size, border, color), (size + gap + col * size, y))
    PIL.ImageDraw.Draw(canvas).line([(size + gap // 2, 0), (size + gap // 2, height)], fill=GREY, width=1)
    return save_file(out, lambda f: canvas.save(f, format="PNG"))
