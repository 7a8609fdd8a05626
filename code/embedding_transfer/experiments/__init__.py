"""The experiment runner behind scripts/experiments.py: a spec (TOML) names a grid of training runs
and the sources they learn from; launchers run them side by side here or as Slurm jobs, each in
its own folder, skipping finished runs and resuming interrupted ones; a report tabulates them
beside the paper's numbers (docs/experiments.md).

    spec.py      the TOML file -> checked runs (commands a user could paste)
    state.py     where a run stands, read from its folder (runner.json, checkpoint.pth, log.txt)
    jobs.py      starting and ending one run's process (shared by both launchers)
    plan.py      what each run needs now: skip, start, resume, wait for its source
    local.py     runs side by side on the visible GPUs, or on CPU lanes
    slurm.py     Slurm job arrays through submitit, requeued with --resume when preempted
    costs.py     estimated device time from a table of step costs, each with its origin
    progress.py  counts and an ETA
    report.py    the results table and the paper's claims, from reporting/
    commands.py  what `run`, `status` and `report` do

Nothing is imported here: a Slurm job unpickles slurm.TrainJob without loading torch.
"""
