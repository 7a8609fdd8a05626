"""The paper's three results tables as the project carries them (code/paper_results.csv) and as
paper_results.py hands them to the tables."""
import csv
import json
import os

import pytest

from embedding_transfer.reporting import paper_results
from embedding_transfer.losses import LOSSES
from embedding_transfer.reporting.paper_results import PAPER, load_paper_results, paper_source_value, paper_value
from embedding_transfer.reporting.runs import Run
from embedding_transfer.reporting.tables import SOURCE_ROW

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CSV = os.path.join(ROOT, "..", "shared", "paper", "paper_results.csv")

# The paper's names, spelled out here independently of paper_results.py.
SETTINGS = {"self_transfer": ("bn_inception-512", "bn_inception-512"),
            "dim_reduction": ("bn_inception-512", "bn_inception-64"),
            "compression": ("resnet50-512", "resnet18-128")}
NETWORKS = {"BN512": "bn_inception-512", "BN64": "bn_inception-64", "R50512": "resnet50-512",
            "R18128": "resnet18-128"}
SOURCE = "Source: PA"


def method_name(paper_method):
    return {"Ours": "Relaxed_Contra", SOURCE: "source (Proxy_Anchor)"}.get(paper_method, paper_method)


def csv_rows(path=paper_results.CSV_PATH):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_csv_value_is_reachable_through_paper_value():
    rows = csv_rows()
    assert len(rows) == len(PAPER) == 216    # 3 settings x 8 methods x 3 data sets x 3 K
    seen = set()
    for row in rows:
        teacher, target = SETTINGS[row["setting"]]
        # The CSV's network is the target's, on the source row the source's.
        assert NETWORKS[row["network"]] == (teacher if row["method"] == SOURCE else target), row
        metric = f"R@{row['k']}"
        value = paper_value(teacher, target, row["dataset"], method_name(row["method"]), metric)
        assert value == float(row["recall_percent"]), row
        seen.add((teacher, target, row["dataset"], row["method"], metric))
    assert len(seen) == 216


def test_every_paper_method_is_one_of_ours():
    methods = {method_name(r["method"]) for r in csv_rows()}
    assert methods - {"source (Proxy_Anchor)"} <= set(LOSSES)
    assert methods == {"source (Proxy_Anchor)", "Relaxed_Contra", "RKD", "PKT", "DarkRank", "Attention", "FitNet",
                       "CRD"}
    # The paper reports no relaxed MS loss: no value may appear for it.
    assert not any(m == "Relaxed_MS" for _, _, m, _ in PAPER)


def test_paper_reports_r1_2_4_and_r1_10_100_on_sop():
    ks = {}
    for setting, dataset, method, metric in PAPER:
        ks.setdefault(dataset, set()).add(metric)
    assert ks == {"cub": {"R@1", "R@2", "R@4"}, "cars": {"R@1", "R@2", "R@4"}, "SOP": {"R@1", "R@10", "R@100"}}


def test_source_row_label_is_the_one_a_proxy_anchor_source_run_gets(tmp_path):
    with open(tmp_path / "args.json", "w") as f:
        json.dump({"model": "bn_inception", "embedding_size": 512, "dataset": "cub", "loss": "Proxy_Anchor"}, f)
    (tmp_path / "metrics.jsonl").write_text("")
    assert Run(str(tmp_path)).method == paper_results.PROXY_ANCHOR_SOURCE
    assert paper_results.PROXY_ANCHOR_SOURCE.startswith(SOURCE_ROW)


def test_source_value_of_a_source_run():
    assert paper_source_value("bn_inception-512", "SOP", "source (Proxy_Anchor)", "R@100") == paper_value(
        "bn_inception-512", "bn_inception-64", "SOP", "source (Proxy_Anchor)", "R@100") is not None
    assert paper_source_value("resnet50-512", "cub", "source (Proxy_Anchor)") == paper_value(
        "resnet50-512", "resnet18-128", "cub", "source (Proxy_Anchor)") is not None
    assert paper_source_value("resnet18-128", "cub", "source (Proxy_Anchor)") is None
    assert paper_source_value("bn_inception-512", "cub", "source (MS)") is None


def test_malformed_csv_is_refused(tmp_path):
    header = "setting,method,network,dataset,k,recall_percent\n"
    cases = {"self_transfer,Ours,BN512,cub,10,70.0\n": "does not fit",      # K=10 is SOP's
             "self_transfer,Ours,BN64,cub,1,70.0\n": "does not fit",       # wrong network
             "self_transfer,Relaxed MS,BN512,cub,1,70.0\n": "unexpected",
             "self_transfer,Ours,BN512,cub,1,70.0\nself_transfer,Ours,BN512,cub,1,71.0\n": "second value"}
    for body, message in cases.items():
        path = tmp_path / "p.csv"
        path.write_text(header + body)
        with pytest.raises(ValueError, match=message):
            load_paper_results(str(path))


@pytest.mark.skipif(not os.path.isfile(SHARED_CSV), reason="no ../shared/paper (only in the project's workspace)")
def test_project_copy_matches_the_shared_paper_csv():
    assert csv_rows() == csv_rows(SHARED_CSV)
