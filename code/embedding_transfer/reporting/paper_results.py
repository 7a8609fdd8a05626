"""The paper's published numbers (Kim et al., CVPR 2021) that our tables set beside ours.

The three results tables of the authors' README (self-transfer, dimensionality reduction,
compression) are data in paper_results.csv, next to this file, one recall per row:
setting, method, network, dataset, k, recall_percent. On SOP the recalls are at K = 1/10/100, on
CUB and Cars at K = 1/2/4. Loaded here into PAPER[(setting, dataset, method, 'R@k')] = percent, with
the paper's names turned into ours: settings as setting_name() names them, methods as the --loss
names of train_target.py ('Ours' is the relaxed contrastive loss; the paper has no row for the
relaxed MS loss), and the Proxy-Anchor source ('Source: PA') as the tables' label of a source run
trained with Proxy-Anchor. The CSV's network is the target's, or the source's on the source row.
"""
import csv
import os

CSV_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_results.csv")

# setting: (source network, target network), as 'model-dim'.
PAPER_SETTINGS = {
    "self-transfer": ("bn_inception-512", "bn_inception-512"),
    "dimensionality reduction": ("bn_inception-512", "bn_inception-64"),
    "compression": ("resnet50-512", "resnet18-128"),
}

# The paper's names -> ours.
SETTING_NAMES = {"self_transfer": "self-transfer", "dim_reduction": "dimensionality reduction",
                 "compression": "compression"}
# The label runs.Run.method gives a source network trained with Proxy-Anchor (tables.SOURCE_ROW).
PROXY_ANCHOR_SOURCE = "source (Proxy_Anchor)"
METHOD_NAMES = {"Source: PA": PROXY_ANCHOR_SOURCE, "Ours": "Relaxed_Contra", "FitNet": "FitNet",
                "Attention": "Attention", "CRD": "CRD", "DarkRank": "DarkRank", "PKT": "PKT", "RKD": "RKD"}
NETWORK_NAMES = {"BN512": "bn_inception-512", "BN64": "bn_inception-64", "R50512": "resnet50-512",
                 "R18128": "resnet18-128"}
PAPER_KS = {"cub": (1, 2, 4), "cars": (1, 2, 4), "SOP": (1, 10, 100)}


def load_paper_results(path=CSV_PATH):
    """{(setting, dataset, method, 'R@k'): percent} from the paper's CSV, in our names. Refuses a
    row whose names, network or K do not fit the paper's layout, and a repeated cell."""
    table = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                setting, method = SETTING_NAMES[row["setting"]], METHOD_NAMES[row["method"]]
                network, dataset, k = NETWORK_NAMES[row["network"]], row["dataset"], int(row["k"])
                value = float(row["recall_percent"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line}: unexpected {e} in {row}") from None
            role = 0 if method == PROXY_ANCHOR_SOURCE else 1
            if network != PAPER_SETTINGS[setting][role] or k not in PAPER_KS.get(dataset, ()):
                raise ValueError(f"{path}, line {line}: {row} does not fit the {setting} setting")
            key = (setting, dataset, method, f"R@{k}")
            if key in table:
                raise ValueError(f"{path}, line {line}: a second value for {key}")
            table[key] = value
    return table


PAPER = load_paper_results()


def setting_name(teacher, network):
    """The paper's name for learning `network` from `teacher` (both 'model-dim')."""
    if teacher is None:
        return "no source"
    (t_model, t_dim), (n_model, n_dim) = (s.rsplit("-", 1) for s in (teacher, network))
    if t_model != n_model:
        return "compression"
    if t_dim == n_dim:
        return "self-transfer"
    return "dimensionality reduction" if int(n_dim) < int(t_dim) else "dimension increase"


def paper_value(teacher, network, dataset, method, metric="R@1"):
    """The paper's number, in percent, for `method` in the table of the setting `teacher` ->
    `network` (both 'model-dim'), or None where the paper reports none. `method` is a row label of
    our tables: a --loss name of train_target.py, or 'source (Proxy_Anchor)' for the source."""
    setting = setting_name(teacher, network)
    if PAPER_SETTINGS.get(setting) != (teacher, network):
        return None
    return PAPER.get((setting, dataset, method, metric))


def paper_source_value(network, dataset, method, metric="R@1"):
    """The paper's number for a source run (`method` 'source (Proxy_Anchor)') of `network`, from
    the tables it is the source of; None where they report none or do not agree."""
    values = {PAPER.get((s, dataset, method, metric)) for s, (src, _) in PAPER_SETTINGS.items() if src == network}
    values.discard(None)
    return values.pop() if len(values) == 1 else None
