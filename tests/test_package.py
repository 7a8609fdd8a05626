"""The library as a user installs it: `pip install -e .` into a fresh environment, then the example
of docs/losses.md; the package layout; the batch-size table of docs/losses.md."""
import os
import re
import subprocess
import sys
import sysconfig

import pytest
import torch
import torch.nn.functional as F

from embedding_transfer.losses import RelaxedContrastiveLoss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "losses.md")


def doc_text():
    with open(DOC) as f:
        return f.read()


@pytest.mark.e2e
def test_losses_example_runs_after_pip_install_e(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    # The fresh environment sees this one's packages (torch, several GB) instead of installing
    # them again; the project itself it gets only from its own install.
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "parent_env.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "-e", ROOT], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    (example,) = re.findall(r"```python\n(.*?)```", doc_text(), re.S)
    assert len(example.strip().splitlines()) <= 16
    script = tmp_path / "example.py"
    script.write_text("import embedding_transfer\nprint('from', embedding_transfer.__file__)\n" + example)
    out = subprocess.run([python, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"from {os.path.join(ROOT, 'code', 'embedding_transfer', '__init__.py')}" in out.stdout
    assert re.search(r"relaxed contrastive loss \d+\.\d\d on N = 180", out.stdout), out.stdout


def test_only_the_entry_points_put_code_on_the_path():
    """The library imports itself relatively: no module under code/ but the paper's three entry
    points touches sys.path."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "code")):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and "sys.path.insert" in open(path).read():
                found.append(os.path.relpath(path, ROOT))
    assert sorted(found) == ["code/train_source.py", "code/train_target.py"]
    assert "sys.path.insert" in open(os.path.join(ROOT, "evaluate.py")).read()


def test_the_batch_size_table_of_the_docs():
    """docs/losses.md: the relaxed contrastive loss on random embeddings grows with N as its table says."""
    row = re.search(r"\| N \|(.*)\|\n\|[-| ]+\|\n\| loss \|(.*)\|", doc_text())
    sizes = [int(v) for v in row.group(1).split("|")]
    documented = [float(v) for v in row.group(2).split("|")]
    torch.manual_seed(0)
    loss = RelaxedContrastiveLoss()
    measured = [sum(loss(torch.randn(n, 64), F.normalize(torch.randn(n, 512), dim=1)).item() for _ in range(5)) / 5
                for n in sizes]
    assert [round(v, 1) for v in measured] == documented
