"""docs/gpu.md against the code, so that the page cannot drift silently: its links and paths exist,
every command and flag it quotes parses with the entry point's own parser, the torch and CUDA
versions it names are requirements.txt's pin and that wheel's, the GPU check's stages and limits are
scripts/gpu_check.py's, and its estimates follow from what it says they follow from (FLOPs counted
here on the meta device, the split sizes of docs/data.md, the scripts' batch sizes and epochs, the
samplers' epoch length and the assumed rates the page states). No training; a few seconds."""
import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from embedding_transfer import train_source, train_target  # noqa: E402
from embedding_transfer.evaluate_checkpoint import get_args_parser as evaluate_parser  # noqa: E402
from embedding_transfer.loaders import batch_sampler  # noqa: E402
import gpu_check  # noqa: E402

DOC_PATH = os.path.join(ROOT, "docs", "gpu.md")
DOC = open(DOC_PATH, encoding="utf-8").read()
DOC_FLAT = " ".join(DOC.split())   # the prose with its line breaks undone, for phrases
# Paths the page names that runs write, not files of the repository.
OUTPUTS = {"misc/gpu_report.md", "logs/gpu_report_dry_run.md"}
TOP = {"code", "scripts", "benchmarks", "docs", "tests", "misc", "logs", "pretrained_source"}
DATASETS = {"CUB-200-2011": "cub", "Cars-196": "cars", "SOP": "SOP"}


def _load_results_table():
    spec = importlib.util.spec_from_file_location("results_table", os.path.join(ROOT, "scripts", "results_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARSERS = {"train_target": train_target.get_args_parser(), "train_source": train_source.get_args_parser(),
           "evaluate": evaluate_parser(), "results_table": _load_results_table().get_args_parser()}


def options(parser):
    return {s for a in parser._actions for s in a.option_strings}


def parses(parser, argv):
    """True when `parser` accepts argv (argparse's complaints are kept off the test's output)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
            return True
        except SystemExit:
            return False


def gpu_check_parses(argv):
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            gpu_check.get_args(argv)
            return True
        except SystemExit:
            return False


def script_command(name):
    """(entry point, argv) of a paper script's one command, without the pass-through "$@"."""
    text = open(os.path.join(ROOT, "scripts", name)).read().replace("\\\n", " ")
    for line in text.splitlines():
        tokens = shlex.split(line, comments=True)
        for entry in ("train_target", "train_source"):
            path = f"code/{entry}.py"
            if path in tokens:
                return entry, [t for t in tokens[tokens.index(path) + 1:] if t != "$@"]
    raise AssertionError(f"scripts/{name}: no train_target.py or train_source.py command")


def inline_code():
    text = re.sub(r"```.*?```", "", DOC, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def fenced_lines():
    lines = []
    for block in re.findall(r"```(?:bash)?\n(.*?)```", DOC, flags=re.S):
        lines += [ln for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return lines


def commands():
    """Every command line the page quotes (fenced blocks and inline code), as token lists."""
    spans = fenced_lines() + [c for c in inline_code() if re.match(r"(python|bash|pip|torchrun) ", c)]
    return [shlex.split(s, comments=True) for s in spans]


def is_repo_path(token):
    return "/" in token and "://" not in token and token.split("/")[0] in TOP


# ---------------------------------------------------------------------------------------------------
# Links, paths, commands and flags


def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_link_and_anchor_exists():
    links = re.findall(r"\]\(([^)\s]+)\)", DOC)
    assert links, "docs/gpu.md links nothing"
    for link in links:
        if re.match(r"https?://", link):
            continue
        target, _, anchor = link.partition("#")
        path = os.path.normpath(os.path.join(ROOT, "docs", target)) if target else DOC_PATH
        assert os.path.exists(path), f"docs/gpu.md links {link}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", open(path, encoding="utf-8").read(), re.M)
            assert anchor in {slug(h) for h in headings}, f"docs/gpu.md links {link}: no such heading"


def test_links_to_the_distributed_and_training_docs():
    for target in ("distributed.md", "training.md"):
        assert re.search(rf"\]\({re.escape(target)}(#[^)]*)?\)", DOC), f"docs/gpu.md should link {target}"


def test_every_path_it_names_exists():
    tokens = [t for c in inline_code() for t in c.split()] + [t for c in commands() for t in c]
    named = {t.rstrip(".,;:") for t in tokens if is_repo_path(t) or t == "requirements.txt"}
    assert "scripts/gpu_check.sh" in named
    for path in sorted(named - OUTPUTS):
        if path.startswith(("logs/", "pretrained_source/")):
            path = path.split("/")[0]   # runs write below these folders (e.g. a --save-dir)
        assert os.path.exists(os.path.join(ROOT, path)), f"docs/gpu.md names {path}: no such file"


def test_the_gpu_reports_it_names_are_where_gpu_check_writes_them():
    assert os.path.samefile(os.path.dirname(gpu_check.get_args([]).report), os.path.join(ROOT, "misc"))
    assert gpu_check.get_args([]).report.endswith(os.path.join("misc", "gpu_report.md"))
    assert gpu_check.get_args(["--dry-run"]).report.endswith(os.path.join("logs", "gpu_report_dry_run.md"))


def test_no_gpu_report_while_the_page_says_no_gpu_has_run():
    if "No GPU has run this code yet" in DOC:
        assert not os.path.exists(os.path.join(ROOT, "misc", "gpu_report.md")), (
            "misc/gpu_report.md exists: a GPU has run the check. Update docs/gpu.md ('What has run on a GPU', "
            "and the estimates the report's measurements replace)")


def test_every_command_it_quotes_parses():
    checked = 0
    for tokens in commands():
        if tokens[0] not in ("python", "bash"):
            continue
        if tokens[1] == "-c":
            continue
        script, rest = tokens[1], tokens[2:]
        assert os.path.exists(os.path.join(ROOT, script)), f"docs/gpu.md runs {script}: no such file"
        name = os.path.basename(script)
        if name == "gpu_check.sh":
            assert gpu_check_parses(rest), f"scripts/gpu_check.sh does not take {rest}"
        elif name == "results_table.py":
            assert parses(PARSERS["results_table"], rest), f"scripts/results_table.py does not take {rest}"
        elif name in ("train_target.py", "train_source.py"):
            assert parses(PARSERS[name[:-3]], rest), f"{script} does not take {rest}"
        elif name == "evaluate.py":
            assert parses(PARSERS["evaluate"], rest), f"evaluate.py does not take {rest}"
        elif name.endswith(".sh") and script.startswith("scripts/") and name != "gpu_check.sh":
            entry, argv = script_command(name)
            assert parses(PARSERS[entry], argv + rest), f"{script} {' '.join(rest)}: {entry} refuses it"
        else:
            continue
        checked += 1
    assert checked >= 5


def test_every_flag_it_quotes_exists_and_takes_its_value():
    known = set().union(*(options(p) for p in PARSERS.values())) | gpu_check_options()
    assert {"--dry-run", "--only", "--total"} <= gpu_check_options()
    spans = [c for c in inline_code() if c.startswith("--")]
    assert len(spans) > 10
    for span in spans:
        tokens = shlex.split(span)
        for flag in (t for t in tokens if t.startswith("--")):
            assert flag in known, f"docs/gpu.md quotes {flag}: no entry point takes it"
        values = [t for t in tokens if not t.startswith("--")]
        if len(tokens) == 1 or any(re.fullmatch(r"[a-zA-Z]", v) for v in values):
            continue   # a flag alone, or with a placeholder (`--IPC m`)
        candidates = [p for p in PARSERS.values() if {t for t in tokens if t.startswith("--")} <= options(p)]
        ok = any(parses(p, (["logs/"] if p is PARSERS["results_table"] else []) + tokens) for p in candidates)
        ok = ok or gpu_check_parses(tokens)
        assert ok, f"docs/gpu.md quotes `{span}`: no entry point accepts it"


def gpu_check_options():
    """The flags of scripts/gpu_check.py (its parser is built inside get_args)."""
    source = open(os.path.join(ROOT, "scripts", "gpu_check.py")).read()
    return set(re.findall(r'add_argument\("(--[\w-]+)"', source))


# ---------------------------------------------------------------------------------------------------
# Facts the page states about the code


def test_the_torch_it_names_is_the_pin():
    pin = re.search(r"^torch==(\S+)$", open(os.path.join(ROOT, "requirements.txt")).read(), re.M).group(1)
    named = set(re.findall(r"\btorch (\d+\.\d+\.\d+)\b", DOC_FLAT)) | set(re.findall(r"`(\d+\.\d+\.\d+)\+cu\d+", DOC_FLAT))
    assert named == {pin}, f"docs/gpu.md names torch {named}, requirements.txt pins {pin}"


def test_the_cuda_build_and_architectures_it_names_are_the_installed_wheels():
    pin = re.search(r"^torch==(\S+)$", open(os.path.join(ROOT, "requirements.txt")).read(), re.M).group(1)
    if torch.__version__.split("+")[0] != pin or not torch.version.cuda:
        pytest.skip(f"installed torch {torch.__version__} is not the pinned CUDA wheel")
    cuda = torch.version.cuda
    tag = "cu" + cuda.replace(".", "")
    assert f"`{torch.__version__} {cuda}`" in DOC_FLAT, f"the page should say what this torch prints: {torch.__version__} {cuda}"
    assert f"{pin}+{tag}" in DOC_FLAT and f"CUDA {cuda}" in DOC_FLAT
    assert f"CUDA {cuda.split('.')[0]}.x" in DOC_FLAT
    assert ", ".join(torch.cuda.get_arch_list()) in DOC_FLAT, f"arch list is {torch.cuda.get_arch_list()}"
    oldest = min(torch.cuda.get_arch_list(), key=lambda a: int(a[3:]))
    assert f"compute capability {oldest[3:-1]}.{oldest[-1]} and newer" in DOC_FLAT


def test_the_defaults_it_states():
    target = PARSERS["train_target"].parse_args([])
    source = PARSERS["train_source"].parse_args([])
    assert target.IPC == 3 and "`code/train_target.py` defaults to it" in DOC_FLAT
    assert target.seed == 0 and "`code/train_target.py` uses seed 0 by default" in DOC_FLAT
    assert source.seed == 1 and "`code/train_source.py` uses seed 1" in DOC_FLAT
    assert target.workers == 8 and "The default is `--workers 8`" in DOC_FLAT
    assert target.amp == "none" and not target.channels_last and "`--channels-last` are off by default" in DOC_FLAT
    assert (target.batch_size, target.view) == (90, 2)


def test_every_paper_script_passes_ipc_3():
    for setting in ("self_transfer", "dim_reduction", "compression"):
        for dataset in ("cub", "cars", "SOP"):
            entry, argv = script_command(f"{setting}_{dataset}.sh")
            args = PARSERS[entry].parse_args(argv)
            assert (entry, args.IPC, args.view, args.batch_size) == ("train_target", 3, 2, 90)


def test_the_gpu_check_table_is_gpu_checks_stages_and_limits():
    rows = [r for r in table_rows(DOC) if r[0] in gpu_check.LIMITS]
    assert [r[0] for r in rows] == list(gpu_check.LIMITS), "the stages, in gpu_check's order"
    for name, limit, *_ in rows:
        expected = gpu_check.LIMITS[name]
        assert (limit == "the rest") if expected is None else (float(limit) == expected), name
    assert f"the whole check has {gpu_check.TOTAL} s" in DOC_FLAT


# ---------------------------------------------------------------------------------------------------
# The estimates


def table_rows(text):
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[-| ]+\|", line.strip()):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def doc_number(pattern):
    m = re.search(pattern, DOC_FLAT)
    assert m, f"docs/gpu.md should state {pattern}"
    return float(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def flops():
    """{(network, dim): (forward, forward + backward) GFLOP per 224-px image}, counted on meta tensors."""
    from torch.utils.flop_counter import FlopCounterMode
    from embedding_transfer.models import build_model
    out = {}
    for net, dim in (("bn_inception", 512), ("bn_inception", 64), ("resnet50", 512), ("resnet18", 128)):
        with torch.device("meta"):
            model = build_model(net, dim, pretrained=False).train()
        x = torch.empty(2, 3, 224, 224, device="meta")
        with FlopCounterMode(display=False) as fwd:
            _, emb = model(x)
        with FlopCounterMode(display=False) as bwd:
            emb.sum().backward()
        f, b = fwd.get_total_flops() / 2e9, bwd.get_total_flops() / 2e9
        out[(net, dim)] = (f, f + b)
    return out


def split_sizes():
    """{dataset: (train, eval) images} from docs/data.md's table."""
    sizes = {}
    for row in table_rows(open(os.path.join(ROOT, "docs", "data.md"), encoding="utf-8").read()):
        if row[0] in DATASETS:
            train, test = re.findall(r"([\d,]+) \(", row[-1])
            sizes[DATASETS[row[0]]] = (int(train.replace(",", "")), int(test.replace(",", "")))
    assert set(sizes) == set(DATASETS.values())
    return sizes


class Split:
    """What the samplers read of a training split: its labels and size."""

    def __init__(self, n, classes):
        self.ys = [i % classes for i in range(n)]

    def __len__(self):
        return len(self.ys)


def steps_per_epoch(args, n):
    return len(batch_sampler(args, Split(n, 100), torch.Generator().manual_seed(0)))


def seconds(text):
    value, unit = re.fullmatch(r"([\d.]+) (min|h)", text).groups()
    return float(value) * (60 if unit == "min" else 3600), (30 if unit == "min" else 180)


def close(stated, expected, rel=0.02, unit=0.05):
    return abs(stated - expected) <= unit + rel * expected


def test_the_flop_table_is_the_networks(flops):
    rows = {r[0]: r for r in table_rows(DOC) if r[0] in ("bn_inception", "resnet50", "resnet18")}
    assert set(rows) == {"bn_inception", "resnet50", "resnet18"}
    for net, dim in (("bn_inception", 512), ("resnet50", 512), ("resnet18", 128)):
        f, fb = flops[(net, dim)]
        assert close(float(rows[net][1]), f, 0.005, 0.005) and close(float(rows[net][2]), fb, 0.005, 0.005), (
            f"{net}: counted {f:.2f} / {fb:.2f} GFLOP per image")
    assert abs(flops[("bn_inception", 64)][1] / flops[("bn_inception", 512)][1] - 1) < 0.001


def test_the_assumed_rates_follow_from_the_cited_throughput(flops):
    fb = flops[("resnet50", 512)][1]
    tf32 = doc_number(r"([\d,]+) images/s in TF32")
    amp = doc_number(r"([\d,]+) images/s in mixed precision")
    assert close(doc_number(r"([\d.]+) TFLOP/s in fp32"), tf32 * fb / 1000, 0.005, 0.05)
    assert close(doc_number(r"([\d.]+) TFLOP/s with `--amp bf16`"), amp * fb / 1000, 0.005, 0.05)


def assumed_rates():
    """(fp32, bf16) in GFLOP/s, as the page states them in TFLOP/s."""
    return (1000 * doc_number(r"([\d.]+) TFLOP/s in fp32"), 1000 * doc_number(r"([\d.]+) TFLOP/s with `--amp bf16`"))


def check_row(row, stated, expected):
    what = " | ".join(row)
    train, evaluation = (float(x) for x in stated["s/epoch"].split(" + "))
    assert close(train, expected["train"]) and close(evaluation, expected["eval"]), (
        f"{what}: expected {expected['train']:.1f} + {expected['eval']:.1f} s/epoch")
    for key in ("run32", "run16"):
        got, unit = seconds(stated[key])
        assert abs(got - expected[key]) <= unit + 0.02 * expected[key], f"{what}: expected {expected[key] / 60:.0f} min"


def test_the_target_estimates(flops):
    sizes, fp32, bf16 = split_sizes(), *assumed_rates()
    rows = [r for r in table_rows(DOC) if len(r) == 9 and re.fullmatch(r"`scripts/(self_transfer|dim_reduction|compression)_\w+\.sh`", r[2])]
    assert len(rows) == 9
    for row in rows:
        entry, argv = script_command(row[2].strip("`")[len("scripts/"):])
        args = PARSERS[entry].parse_args(argv)
        train_target.default_source(args)
        dataset = DATASETS[row[1]]
        assert args.dataset == dataset
        n_train, n_eval = sizes[dataset]
        steps = steps_per_epoch(args, n_train)
        assert (int(row[3]), int(row[4])) == (args.epochs, steps), f"{row[2]}: {args.epochs} epochs of {steps} steps"
        target = flops[(args.model, args.embedding_size)]
        source = flops[(args.source_model, args.source_embedding_size)]
        step = args.batch_size * args.view * (target[1] + source[0])   # GFLOP
        assert close(float(row[5]), step / 1000, 0, 0.006), f"{row[2]}: {step / 1000:.2f} TFLOP a step"
        train, evaluation = steps * step, n_eval * target[0]
        check_row(row, {"s/epoch": row[6], "run32": row[7], "run16": row[8]},
                  {"train": train / fp32, "eval": evaluation / fp32,
                   "run32": args.epochs * (train + evaluation) / fp32, "run16": args.epochs * (train + evaluation) / bf16})


def test_the_source_estimates(flops):
    sizes, fp32, bf16 = split_sizes(), *assumed_rates()
    rows = [r for r in table_rows(DOC) if len(r) == 9 and re.fullmatch(r"`scripts/source_\w+\.sh`", r[2])]
    assert len(rows) == 6
    for row in rows:
        entry, argv = script_command(row[2].strip("`")[len("scripts/"):])
        args = PARSERS[entry].parse_args(argv)
        assert entry == "train_source" and args.dataset == DATASETS[row[1]]
        n_train, n_eval = sizes[args.dataset]
        steps = steps_per_epoch(args, n_train)
        assert (int(row[3]), int(row[4]), int(row[5])) == (args.batch_size, args.epochs, steps), (
            f"{row[2]}: batch {args.batch_size}, {args.epochs} epochs of {steps} steps")
        fwd, fwd_bwd = flops[(args.model, args.embedding_size)]
        train, evaluation = steps * args.batch_size * fwd_bwd, n_eval * fwd
        check_row(row, {"s/epoch": row[6], "run32": row[7], "run16": row[8]},
                  {"train": train / fp32, "eval": evaluation / fp32,
                   "run32": args.epochs * (train + evaluation) / fp32, "run16": args.epochs * (train + evaluation) / bf16})
