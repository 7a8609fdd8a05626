"""The paper's commands, as README and scripts/ give them, parse with the reference's meaning."""
import argparse
import glob
import os
import shlex

import pytest

from embedding_transfer import train_source
from embedding_transfer import train_target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands(script):
    """README's complete commands for a script (lines with <placeholders> are templates)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        return [line.strip() for line in f if line.strip().startswith(f"python code/{script}") and "<" not in line]


def script_command(path):
    """The python command of a scripts/*.sh file, with the continuation lines joined."""
    text = open(path).read().replace("\\\n", " ")
    (line,) = [l for l in text.splitlines() if "code/train_" in l]
    return line.replace('"${PYTHON:-python}"', "python").replace('"$@"', "").strip()


def parse(command):
    words = shlex.split(command)
    assert words[0] == "python"
    module = {"code/train_target.py": train_target, "code/train_source.py": train_source}[words[1]]
    return module.get_args_parser().parse_args(words[2:])


def test_readme_has_the_nine_paper_commands():
    cmds = readme_commands("train_target.py")
    assert len(cmds) == 9
    settings = {(a.model, a.embedding_size, a.dataset) for a in map(parse, cmds)}
    assert settings == {(m, d, ds) for ds in ("cub", "cars", "SOP")
                        for m, d in (("bn_inception", 512), ("bn_inception", 64), ("resnet18", 128))}


@pytest.mark.parametrize("cmd", readme_commands("train_target.py"))
def test_readme_target_command(cmd):
    args = parse(cmd)
    assert args.gpu_id == 0 and args.loss == "Relaxed_Contra" and args.view == 2
    assert args.epochs == (150 if args.dataset == "SOP" else 90)
    src = "resnet50" if args.model == "resnet18" else "bn_inception"
    assert args.source_ckpt == f"./pretrained_source/{src}/{args.dataset}_{src}_512dim_Proxy_Anchor_ckpt.pth"


TRAINING_SCRIPTS = [p for p in sorted(glob.glob(os.path.join(ROOT, "scripts", "*.sh")))
                    if not os.path.basename(p).startswith(("download", "mini_reproduction", "gpu_"))]


def test_a_script_per_experiment_and_source_model():
    assert len(TRAINING_SCRIPTS) == 9 + 6


@pytest.mark.parametrize("path", TRAINING_SCRIPTS, ids=os.path.basename)
def test_experiment_scripts_parse(path):
    args = parse(script_command(path))
    name = os.path.basename(path)[:-3]
    assert args.dataset == name.rsplit("_", 1)[1]
    if name.startswith("source_"):
        assert args.loss == "Proxy_Anchor" and args.embedding_size == 512 and name.startswith(f"source_{args.model}")
    else:
        assert os.path.basename(args.source_ckpt) == f"{args.dataset}_{args.source_ckpt.split('/')[2]}_512dim_Proxy_Anchor_ckpt.pth"



def test_reference_defaults():
    """The authors' defaults (SPEC.md section 4, then ../shared/paper/reference-flags.md)."""
    a = train_target.get_args_parser().parse_args([])
    assert (a.optimizer, a.lr, a.weight_decay, a.batch_size, a.IPC, a.view, a.sigma, a.delta, a.epochs,
            a.source_norm, a.target_norm, a.seed, a.crop_size, a.bn_freeze, a.warm, a.save, a.workers,
            a.LOG_DIR) == \
        ("adamw", 1e-4, 1e-4, 90, 3, 2, 1.0, 1.0, 90, 1, 0, 0, 224, 0, 0, 0, 8, "./logs")
    s = train_source.get_args_parser().parse_args([])
    assert (s.loss, s.lr, s.lr_decay_step, s.lr_decay_gamma, s.alpha, s.mrg, s.warm, s.l2_norm, s.bn_freeze,
            s.batch_size, s.epochs, s.LOG_DIR, s.save, s.seed, s.workers) == \
        ("Proxy_Anchor", 1e-4, 10, 0.5, 32.0, 0.1, 0, 0, 0, 90, 60, "./pretrained_source", 0, 1, 8)


def test_paper_targets_train_batchnorm_and_are_saved():
    """The authors' README commands pass neither --bn-freeze nor --warm: the paper's targets
    trained BatchNorm from the first epoch. Every command and script saves its best model."""
    commands = readme_commands("train_target.py") + [script_command(p) for p in TRAINING_SCRIPTS
                                                     if not os.path.basename(p).startswith("source_")]
    assert len(commands) == 18
    for cmd in commands:
        args = parse(cmd)
        assert (args.bn_freeze, args.warm, args.save, args.IPC) == (0, 0, 1, 3), cmd


@pytest.mark.parametrize("path", [p for p in TRAINING_SCRIPTS if os.path.basename(p).startswith("source_")],
                         ids=os.path.basename)
def test_source_scripts_save_normalised_networks(path):
    args = parse(script_command(path))
    assert (args.save, args.l2_norm, args.LOG_DIR) == (1, 1, "./pretrained_source")
    assert train_source.checkpoint_path(args) == os.path.join(
        "./pretrained_source", args.model, f"{args.dataset}_{args.model}_512dim_Proxy_Anchor_ckpt.pth")


def test_every_flag_shows_its_default_in_help():
    """argparse's ArgumentDefaultsHelpFormatter adds '(default: ...)' only to options with a help text."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("evaluate_cli", os.path.join(ROOT, "evaluate.py"))
    evaluate_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate_cli)
    for module in (train_target, train_source, evaluate_cli):
        parser = module.get_args_parser()
        assert parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter
        silent = [a.option_strings[0] for a in parser._actions
                  if a.option_strings and a.help is None and a.default is not argparse.SUPPRESS]
        assert not silent, f"{module.__name__}: no help, so no default shown, for {silent}"
    shown = " ".join(train_target.get_args_parser().format_help().split())
    assert "--lr LR learning rate of the target network (default: 0.0001)" in shown
