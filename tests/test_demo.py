"""scripts/demo.py (`make demo`, README's main job) end to end on the emoji data it renders, at a
toy length: every stage runs through the real trainers in the cached regime, with loader workers,
and the table it prints is the one it writes."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.e2e
def test_demo_trains_every_stage_and_writes_its_table(tmp_path):
    logs = tmp_path / "logs"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "demo.py"), "--DATA_DIR", str(tmp_path / "data"),
                          "--LOG_DIR", str(logs), "--epochs", "1", "--cache-views", "2",
                          "--crop-size", "32", "--workers", "2", "--lanes", "2"],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = (logs / "results.md").read_text()
    assert table in out.stdout
    rows = {m[0]: m[1:] for m in re.findall(r"^\| ([^|]+?) \| [^|]+ \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| "
                                            r"([\d.]+) \| ([^|]+) \| (\d+) \|$", table, re.M)}
    assert len(rows) == 5, table
    source = next(k for k in rows if k.startswith("source: Proxy-Anchor above stage6"))
    for name in (source, "target: Relaxed_Contra from the source", "target: Proxy-Anchor alone (ImageNet init.)"):
        dim, *recalls, trained, seconds = rows[name]
        assert [float(r) for r in recalls] == sorted(float(r) for r in recalls)   # R@1 <= R@2 <= R@4 <= R@8
        epochs, steps = map(int, re.fullmatch(r"(\d+) \((\d+)\) ?", trained).groups())
        assert epochs == 1 and steps >= epochs and int(seconds) >= 0
    assert rows[source][0] == "512" and rows["target: Relaxed_Contra from the source"][0] == "64"
    # One cache for the source and both targets, and the kept models the deploy guide starts from.
    assert len(os.listdir(logs / "feature_cache")) == 2
    assert (logs / "pretrained_source" / "efficientnet_lite0" / "emoji_efficientnet_lite0_512dim_Proxy_Anchor_ckpt.pth").is_file()
    assert len(list(logs.rglob("emoji_efficientnet_lite0_best.pth"))) == 2
    assert out.stdout.count("$ python code/train_") == 3   # each stage printed as a command one can rerun
    # The source and the baseline side by side (one thread each), then the transfer alone.
    started = re.findall(r"started (\S+?);", out.stdout)
    assert started == ["source-lite0-emoji", "emoji-dim64-Proxy_Anchor-s0", "emoji-dim64-Relaxed_Contra-s0"], started
    assert out.stdout.index("2 CPU lane(s)") < out.stdout.index("1 CPU lane(s)")
    # A second call trains nothing: the runner skips the finished stages; the table is the same.
    again = subprocess.run(out.args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "0 to run" in again.stdout and "started " not in again.stdout
    assert without_seconds((logs / "results.md").read_text()) == without_seconds(table)


def without_seconds(table):
    return re.sub(r"\| \d+ \|$", "|", re.sub(r"\(\+ \d+ s of feature cache\)", "", table), flags=re.M)
