"""Run records: wandb never blocks or fails a run; files land where the reference puts them."""
import argparse
import json
import os
import sys
import types

import pytest

from embedding_transfer import runlog
from embedding_transfer.errors import UserError


def test_auto_is_offline_without_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))      # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert runlog.resolve_wandb_mode("auto") == "offline"
    assert runlog.resolve_wandb_mode("online") == "offline"     # never a prompt for a key
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert runlog.resolve_wandb_mode("auto") == runlog.resolve_wandb_mode("online") == "online"
    assert runlog.resolve_wandb_mode("offline") == "offline"
    assert runlog.resolve_wandb_mode("disabled") == "disabled"


def test_netrc_credentials_count(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    os.chmod(tmp_path / ".netrc", 0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert runlog.resolve_wandb_mode("auto") == "online"


def test_a_failing_wandb_only_warns(monkeypatch, tmp_path, capsys):
    def broken_init(**kw):
        raise ConnectionError("no network")
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=broken_init, Settings=lambda **kw: None))
    args = argparse.Namespace(wandb="offline", x=1)
    assert runlog.start_wandb("offline", "P", str(tmp_path), args) is None
    assert "wandb could not start (ConnectionError: no network)" in capsys.readouterr().err


def test_wandb_gets_project_config_and_metric_keys(monkeypatch, tmp_path):
    calls = {}

    class Run:
        def log(self, data, step):
            calls.setdefault("log", []).append((data, step))

        def finish(self):
            calls["finished"] = True

    def init(**kw):
        calls["init"] = kw
        return Run()
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init, Settings=lambda **kw: kw))
    args = argparse.Namespace(wandb="offline", lr=0.1)
    log = runlog.RunLog(str(tmp_path / "run"), args, "EmbeddingTransfer_Target")
    log.epoch({"epoch": 0, "loss": 1.5, "lr": 0.1, "R@1": 0.5, "time": 2.0})
    log.finish()
    assert calls["init"]["project"] == "EmbeddingTransfer_Target" and calls["init"]["mode"] == "offline"
    assert calls["init"]["config"] == {"wandb": "offline", "lr": 0.1}
    assert calls["log"] == [({"loss": 1.5, "lr": 0.1, "R@1": 0.5}, 0)] and calls["finished"]
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text()) == \
        {"epoch": 0, "loss": 1.5, "lr": 0.1, "R@1": 0.5, "time": 2.0}
    assert json.loads((tmp_path / "run" / "args.json").read_text()) == {"wandb": "offline", "lr": 0.1}


def test_unwritable_log_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="--LOG_DIR"):
        runlog.check_writable(str(blocker / "run"))


def test_curves_are_redrawn_at_most_every_plot_interval_and_at_the_end(monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(runlog, "plot_curves", lambda records, title, path: drawn.append(len(records)))
    clock = [100.0]
    monkeypatch.setattr(runlog.time, "perf_counter", lambda: clock[0])
    log = runlog.RunLog(str(tmp_path / "run"), argparse.Namespace(wandb="disabled"), "EmbeddingTransfer_Target")
    for epoch, now in enumerate([100.0, 110.0, 125.0, 131.0, 140.0]):
        clock[0] = now
        log.epoch({"epoch": epoch, "loss": 1.0, "lr": 0.1, "R@1": 0.5, "time": 1.0})
    assert drawn == [1, 4]   # the first epoch, then the first one PLOT_EVERY_S (30 s) after it
    log.finish()
    assert drawn == [1, 4, 5]
    log.finish()
    assert drawn == [1, 4, 5]   # nothing new to draw
