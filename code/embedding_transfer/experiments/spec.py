"""A spec: one TOML file (format: scripts/specs/README.md) that names a grid of target runs, data
sets x settings x methods x seeds, and the sources those runs learn from. load() checks it and
turns it into Runs, each holding the exact command a user would type. Every problem is one
UserError line that names the key and the valid choices, before anything starts."""
import dataclasses
import os
import re
import shlex
import string
import tomllib

from ..errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TOP_KEYS = ("out", "seeds", "datasets", "settings", "methods", "costs", "target", "dataset", "setting", "method",
            "source", "base", "prepare")
BUILT_IN = ("method", "dataset", "setting", "seed", "source_ckpt")
# The runner owns these: each run's folder, its seed, resuming, and where a trained source lands.
RUNNER_FLAGS = ("--LOG_DIR", "--seed", "--resume", "--save-dir")
NAME = re.compile(r"^[A-Za-z0-9_.]+$")   # '-' joins the parts of a run's name


@dataclasses.dataclass
class Run:
    name: str            # its folder under the spec's out
    kind: str            # "source" or "target"
    argv: list           # as a user types it: ["python", "code/train_target.py", ...]
    dataset: str
    seed: int = None     # None: a source shared by every seed (trained with the trainer's default seed)
    setting: str = ""
    method: str = ""
    needs: str = ""      # the run that must finish first: its source ("": none, or a downloaded file), or
    #                      the run whose wall clock is its --time-budget (budget_of)
    ckpt: str = ""       # a source: the model file it writes; a target: the source file it reads
    args: object = None  # the trainer's parsed flags, defaults filled in (for the cost estimate)
    budget_of: str = ""  # a labels-only baseline matched to that run: --time-budget = its wall clock

    @property
    def command(self):
        return shlex.join(self.argv)

    @property
    def script(self):
        return os.path.basename(self.argv[1])[:-3]


@dataclasses.dataclass
class Spec:
    path: str
    out: str             # as written (relative paths are relative to the repository root)
    seeds: list
    runs: list
    costs: str           # the step-cost table for the estimate ('' if none)
    prepare: list = dataclasses.field(default_factory=list)   # argv of each step run before any run

    @property
    def out_dir(self):
        return absolute(self.out)

    def run_dir(self, run):
        return os.path.join(self.out_dir, run.name)

    def by_name(self):
        return {r.name: r for r in self.runs}


def absolute(path):
    """Paths in a spec, like the README's commands, are relative to the repository root."""
    return os.path.normpath(os.path.join(ROOT, path))


def load(path, out=None, flags=""):
    """The spec at `path`; `out` replaces its out, and `flags` are added after every run's command
    (sources' and targets'), so they win over the spec's own values (e.g. --epochs 2 for a smoke test)."""
    return _Builder(path, read(path), out, flags).build()


def build(path, data, out=None, flags=""):
    """A spec from its TOML already read (read()) and changed in code; `path` names it in errors."""
    return _Builder(path, data, out, flags).build()


def read(path, chain=()):
    """The TOML of a spec, merged over its `base` spec's (recursively): tables merge key by key,
    any other value replaces the base's."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        where = f"{chain[-1]}: base " if chain else ""
        raise UserError(f"{where}{path}: no such spec file (the specs are in scripts/specs/)") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise UserError(f"{path}: base must be the path of another spec (relative to this one), not {base!r}")
    base = os.path.normpath(os.path.join(os.path.dirname(path), base))
    if os.path.abspath(base) in map(os.path.abspath, (*chain, path)):
        raise UserError(f"{path}: base {base} leads back to itself ({' -> '.join((*chain, path, base))})")
    return merged(read(base, (*chain, path)), data)


def merged(base, over):
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _Builder:
    def __init__(self, path, data, out, flags=""):
        self.path, self.data = path, data
        self.out = out or self.get(data, "out", str, "top level")
        self.overrides = self.not_owned(shlex.split(flags), "--flags")

    def fail(self, message):
        raise UserError(f"{self.path}: {message}")

    def get(self, table, key, kind, where, default=...):
        if key not in table:
            if default is not ...:
                return default
            self.fail(f"{where} lacks the key {key!r}")
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.fail(f"{where}: {key} must be a {getattr(kind, '__name__', 'list')}, not {value!r}")
        return value

    def names(self, key, valid, what):
        values = self.get(self.data, key, list, "top level")
        if not values:
            self.fail(f"{key} is empty: name at least one {what}")
        for v in values:
            if valid is not None and v not in valid:
                self.fail(f"unknown {what} {v!r} in {key}; valid: {', '.join(valid)}")
            if not isinstance(v, str) or not NAME.match(v):
                self.fail(f"{key}: {v!r} is not a name (letters, digits, '_' and '.')")
        if len(set(values)) < len(values):
            self.fail(f"{key} names something twice: {values}")
        return values

    def tables(self, key, valid, what):
        tables = self.get(self.data, key, dict, "top level", {})
        for name, table in tables.items():
            if valid is not None and name not in valid:
                self.fail(f"[{key}.{name}]: unknown {what} {name!r}; valid: {', '.join(valid)}")
            if not isinstance(table, dict):
                self.fail(f"{key}.{name} must be a table ([{key}.{name}])")
        return tables

    def build(self):
        from ..dataset import DATASETS
        from ..losses import LOSSES
        unknown = sorted(set(self.data) - set(TOP_KEYS))
        if unknown:
            self.fail(f"unknown key {unknown[0]!r}; valid top-level keys: {', '.join(TOP_KEYS)}")
        seeds = self.get(self.data, "seeds", list, "top level")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) \
                or len(set(seeds)) < len(seeds):
            self.fail(f"seeds must be a list of different integers, not {seeds!r}")
        datasets = self.names("datasets", list(DATASETS), "data set")
        settings = self.names("settings", None, "setting")
        methods = self.names("methods", list(LOSSES), "method")
        self.kinds = {"dataset": self.tables("dataset", list(DATASETS), "data set"),
                      "setting": self.tables("setting", None, "setting"),
                      "method": self.tables("method", list(LOSSES), "method")}
        for s in settings:
            if s not in self.kinds["setting"]:
                self.fail(f"setting {s!r} has no [setting.{s}] table (defined: "
                          f"{', '.join(self.kinds['setting']) or 'none'})")
        target = self.get(self.data, "target", dict, "top level")
        extra = sorted(set(target) - {"command", "flags"})
        if extra:
            self.fail(f"[target]: unknown key {extra[0]!r}; valid: command, flags")
        self.template = self.get(target, "command", str, "[target]")
        self.target_flags = self.flags(target, "[target]")
        self.fields = self.check_fields()
        self.sources = self.tables("source", None, "source")
        self.source_runs = {}
        targets = [self.target(seed, d, s, m) for seed in seeds for d in datasets for s in settings for m in methods]
        costs = self.get(self.data, "costs", str, "top level", "costs.toml")
        costs = os.path.join(os.path.dirname(os.path.abspath(self.path)), costs)
        prepare = []
        for i, text in enumerate(self.get(self.data, "prepare", list, "top level", [])):
            argv = shlex.split(text) if isinstance(text, str) else []
            if argv[:1] != ["python"] or len(argv) < 2:
                self.fail(f"prepare[{i}]: a step is a command 'python scripts/NAME.py ...', not {text!r}")
            prepare.append(argv)
        return Spec(self.path, self.out, seeds, list(self.source_runs.values()) + targets,
                    costs if os.path.isfile(costs) else "", prepare)

    def check_fields(self):
        """{field: kind of table that sets it} for the target command's fields; a key of a table
        that no command uses is unknown (a misspelt key would otherwise be silently ignored)."""
        fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
        where = {}
        for f in sorted(fields - set(BUILT_IN)):
            kinds = [k for k, tables in self.kinds.items() if any(f in t for t in tables.values())]
            if not kinds:
                self.fail(f"[target] command uses {{{f}}}, which no [dataset.*], [setting.*] or [method.*] "
                          f"table sets (built in: {', '.join(BUILT_IN)})")
            if len(kinds) > 1:
                self.fail(f"{{{f}}} is set in both [{kinds[0]}.*] and [{kinds[1]}.*]: set it in one kind of table")
            where[f] = kinds[0]
        for kind, tables in self.kinds.items():
            reserved = {"setting": ("flags", "source"), "method": ("flags", "budget_of")}.get(kind, ("flags",))
            for name, table in tables.items():
                for key in table:
                    if key not in reserved and key not in where:
                        self.fail(f"[{kind}.{name}]: unknown key {key!r}; valid: {', '.join(reserved)} and the "
                                  f"fields the target command uses ({', '.join(sorted(where)) or 'none'})")
        return where

    def value(self, kind, name, field):
        table = self.kinds[kind].get(name, {})
        if field not in table:
            self.fail(f"[{kind}.{name}] lacks {field}, which the target command uses ({{{field}}})")
        return str(table[field])

    def extra_flags(self, kind, name):
        return self.flags(self.kinds[kind].get(name, {}), f"[{kind}.{name}]")

    def flags(self, table, where):
        """A table's `flags`, added after its commands."""
        return self.not_owned(shlex.split(self.get(table, "flags", str, where, "")), f"{where} flags")

    def split(self, text, script, where):
        argv = shlex.split(text)
        if argv[:2] != ["python", f"code/{script}.py"]:
            self.fail(f"{where}: a command starts with 'python code/{script}.py', not {shlex.join(argv[:2])!r}")
        return self.not_owned(argv, where)

    def not_owned(self, argv, where):
        owned = [a for a in argv if a.split("=", 1)[0] in RUNNER_FLAGS]
        if owned:
            self.fail(f"{where}: remove {owned[0]}: the runner sets {', '.join(RUNNER_FLAGS)} for each run")
        return argv

    def parse(self, module, argv, where):
        parser = module.get_args_parser()

        def error(message):
            self.fail(f"{where}: {message}")
        parser.error = error
        return parser.parse_args(argv[2:])

    def target(self, seed, dataset, setting, method):
        from .. import train_target
        from ..losses import needs_source
        name = f"{dataset}-{setting}-{method}-s{seed}"
        source, ckpt = None, ""
        if needs_source(method):
            source, ckpt = self.source(setting, dataset, seed)
        values = {"method": method, "dataset": dataset, "setting": setting, "seed": seed, "source_ckpt": ckpt}
        values.update({f: self.value(kind, {"dataset": dataset, "setting": setting, "method": method}[kind], f)
                       for f, kind in self.fields.items()})
        argv = self.split(self.template.format_map({k: shlex.quote(str(v)) for k, v in values.items()}),
                          "train_target", "[target] command")
        argv += (self.target_flags + self.extra_flags("setting", setting) + self.extra_flags("dataset", dataset)
                 + self.extra_flags("method", method) + self.overrides)
        argv += ["--LOG_DIR", os.path.join(self.out, name), "--seed", str(seed)]
        args = self.parse(train_target, argv, f"run {name}")
        if (args.dataset, args.loss) != (dataset, method):
            self.fail(f"run {name}: the [target] command trains --dataset {args.dataset} --loss {args.loss}; "
                      "pass --dataset {dataset} --loss {method}")
        if needs_source(method):
            if args.source_ckpt != ckpt:
                self.fail("[target] command: pass --source-ckpt {source_ckpt}, the file of the setting's source")
            train_target.default_source(args)
            if source is not None and (source.args.model, source.args.embedding_size) != (
                    args.source_model, args.source_embedding_size):
                self.fail(f"run {name} takes a {args.source_model}-{args.source_embedding_size} source, but "
                          f"{source.name} trains {source.args.model}-{source.args.embedding_size}")
        run = Run(name, "target", argv, dataset, seed, setting, method, source.name if source else "", ckpt, args)
        matched = self.kinds["method"].get(method, {}).get("budget_of")
        if matched is not None:
            self.match(run, matched)
        return run

    def match(self, run, matched):
        """budget_of: the baseline waits for that method's run of its data set, setting and seed,
        and trains for its wall clock (--time-budget, set when it starts)."""
        from ..losses import needs_source
        where = f"[method.{run.method}] budget_of"
        methods = self.data["methods"]
        if needs_source(run.method):
            self.fail(f"{where}: only a method without a source (a labels-only baseline) is matched to another "
                      f"run's wall clock; {run.method} learns from a source")
        if matched not in methods or methods.index(matched) > methods.index(run.method):
            self.fail(f"{where} = {matched!r}: name a method listed before {run.method} in methods "
                      f"({', '.join(methods)})")
        if run.args.time_budget:
            self.fail(f"{where}: the runner sets --time-budget from {matched}'s wall clock; remove it from the command")
        run.needs = run.budget_of = f"{run.dataset}-{run.setting}-{matched}-s{run.seed}"

    def source(self, setting, dataset, seed):
        """(the Run that trains it, or None for a downloaded file; the checkpoint's path)."""
        from .. import train_source
        from ..dataset import DATASETS
        name = self.kinds["setting"][setting].get("source")
        if name is None:
            self.fail(f"[setting.{setting}] names no source, which its transfer methods need: add source = NAME "
                      f"(defined: {', '.join(self.sources) or 'none'})")
        if name not in self.sources:
            self.fail(f"[setting.{setting}]: source {name!r} has no [source.{name}] table (defined: "
                      f"{', '.join(self.sources) or 'none'})")
        if not NAME.match(str(name)):
            self.fail(f"[source.{name}]: {name!r} is not a name (letters, digits, '_' and '.')")
        table, where = self.sources[name], f"[source.{name}]"
        unknown = sorted(set(table) - {"ckpt", "train", "flags", "seed"} - set(DATASETS))
        if unknown:
            self.fail(f"{where}: unknown key {unknown[0]!r}; valid: ckpt, train, flags, seed, and a data set's name "
                      f"({', '.join(DATASETS)}) for the command that trains it")
        template = self.get(table, "ckpt", str, where)
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        if fields - {"dataset", "seed", "out"}:
            self.fail(f"{where}: ckpt uses {{{sorted(fields - {'dataset', 'seed', 'out'})[0]}}}; it may use "
                      "{dataset}, {seed} (one source per seed) and {out}")
        ckpt = template.format_map({"dataset": dataset, "seed": seed, "out": self.out})
        per_seed = "{seed}" in template
        if not self.get(table, "train", bool, where, True):
            return None, ckpt        # downloaded: the targets start at once
        run_name = f"source-{name}-{dataset}" + (f"-s{seed}" if per_seed else "")
        if run_name in self.source_runs:
            return self.source_runs[run_name], ckpt
        if dataset not in table:
            self.fail(f"{where} has no command for {dataset}: add {dataset} = \"python code/train_source.py ...\", "
                      "or set train = false to use a downloaded file at its ckpt")
        argv = self.split(self.get(table, dataset, str, where), "train_source", f"{where} {dataset}")
        argv += self.flags(table, where) + self.overrides
        argv += ["--LOG_DIR", os.path.join(self.out, run_name), "--save-dir", os.path.dirname(os.path.dirname(ckpt))]
        shared_seed = self.get(table, "seed", int, where, None)
        if per_seed and shared_seed is not None:
            self.fail(f"{where}: seed sets the seed of a source shared by every seed; this ckpt holds {{seed}}, "
                      "so each seed trains its own: remove seed")
        argv += ["--seed", str(seed)] if per_seed else [] if shared_seed is None else ["--seed", str(shared_seed)]
        args = self.parse(train_source, argv, f"{where} {dataset}")
        if args.dataset != dataset or not args.save:
            self.fail(f"{where} {dataset}: the command must pass --dataset {dataset} --save 1")
        saves = train_source.checkpoint_path(args)
        if os.path.normpath(saves) != os.path.normpath(ckpt):
            self.fail(f"{where}: ckpt is {ckpt}, but with --save-dir {args.save_dir} its {dataset} command saves "
                      f"{saves}: make ckpt end in {os.path.join(*saves.split(os.sep)[-2:])}")
        run = Run(run_name, "source", argv, dataset, seed if per_seed else None, ckpt=ckpt, args=args)
        self.source_runs[run_name] = run
        return run, ckpt
