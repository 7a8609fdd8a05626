"""The Slurm launcher, through submitit: no scheduler code here. One job per run, in job arrays;
partition, time limit, GPUs and CPUs per job from flags. The runs that wait for a source this
submission trains form one array per source, held by Slurm until that source's job ends well
(afterok); a job also checks its source's runner.json before starting, since submitit's local
executor knows no dependencies. A job preempted or near its time limit gets submitit's signal:
it stops its trainer as Ctrl-C does (the last whole epoch stays in checkpoint.pth), submitit
requeues it, and it resumes with --resume."""
import json
import os
import subprocess
import time

import submitit

from ..errors import UserError
from ..storage import save_json
from . import jobs, plan, state
from .spec import ROOT

# Slurm's words for a job that will not run again (sacct); any other state leaves it alone.
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "NOT FOUND")


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a job. Holds plain data, so that it pickles; the trainer's process is never pickled."""

    poll = 1.0   # seconds between looks at the trainer, and at a source's runner.json

    def __init__(self, name, argv, folder, needs="", needs_folder="", budget=""):
        self.name, self.argv, self.folder, self.needs, self.needs_folder = name, argv, folder, needs, needs_folder
        self.budget = budget   # the folder of the run whose wall clock is this one's --time-budget
        self._proc = self._record = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_proc", "_record")}

    def __setstate__(self, d):
        self.__dict__.update(d, _proc=None, _record=None)

    def __call__(self):
        while self.needs:
            word = state.status(self.needs_folder)
            if word == state.FINISHED:
                break
            if word == state.FAILED:
                state.write(self.folder, state.FAILED, returncode=None, reason=f"{self.needs}, which it waits for, failed")
                raise RuntimeError(f"{self.name} not started: {self.needs}, which it waits for, failed")
            time.sleep(self.poll)
        env = submitit.JobEnvironment()
        self._proc, self._record = jobs.start(self.argv, self.folder, ROOT, in_job=True, budget=self.budget,
                                              job_id=env.job_id, job_pid=os.getpid())
        # Poll rather than wait: checkpoint() runs in a signal handler and polls the same process.
        while self._proc.poll() is None:
            time.sleep(self.poll)
        word = jobs.end(self.folder, self._proc, self._record)
        rc, self._proc = self._proc.returncode, None
        if word != state.FINISHED:
            raise RuntimeError(f"{self.name} failed with exit status {rc}; the end of "
                               f"{os.path.join(self.folder, state.LOG)}:\n{state.log_tail(self.folder)}")
        return self.name

    def checkpoint(self, *args, **kwargs):
        """submitit calls this on preemption or timeout: stop the trainer cleanly, then requeue a
        fresh job of the same run, which resumes from the checkpoint it finds."""
        if self._proc is not None:
            jobs.stop(self._proc)
            jobs.end(self.folder, self._proc, self._record, stopped=True)
        return submitit.helpers.DelayedSubmission(TrainJob(self.name, self.argv, self.folder, self.needs,
                                                           self.needs_folder, self.budget))


class Slurm:
    def __init__(self, spec, partition=None, time_min=1440, gpus_per_job=1, cpus_per_job=10, max_requeues=20,
                 cluster="slurm"):
        self.spec, self.partition, self.time_min = spec, partition, time_min
        self.gpus, self.cpus, self.max_requeues, self.cluster = gpus_per_job, cpus_per_job, max_requeues, cluster

    def describe(self):
        where = "submitit's local executor (this machine)" if self.cluster == "local" else \
            f"Slurm partition {self.partition or '(the cluster default)'}"
        return (f"{self.cluster} through submitit: {where}, {self.time_min} min a job, {self.gpus} GPU(s) and "
                f"{self.cpus} CPUs a job, one job per run in job arrays; a job preempted or timed out is "
                f"requeued (at most {self.max_requeues} time-outs) and resumes from its checkpoint.pth")

    def executor(self, dependency=None):
        # The jobs import this package from code/, as the entry points do.
        setup = [f"export PYTHONPATH={os.path.join(ROOT, 'code')}${{PYTHONPATH:+:$PYTHONPATH}}"]
        ex = submitit.AutoExecutor(folder=os.path.join(self.spec.out_dir, ".submitit"), cluster=self.cluster,
                                   slurm_max_num_timeout=self.max_requeues, local_max_num_timeout=self.max_requeues)
        ex.update_parameters(name="embedding_transfer", timeout_min=self.time_min, gpus_per_node=self.gpus,
                             cpus_per_task=self.cpus, slurm_partition=self.partition, slurm_setup=setup,
                             local_setup=setup, slurm_dependency=dependency,
                             # a failed source ends its waiting targets instead of leaving them pending
                             slurm_additional_parameters={"kill-on-invalid-dep": "yes"} if dependency else None)
        return ex

    def arrays(self, todo, states):
        """[(source run it waits for, or '', [runs])]: the runs free to start, then one array per
        source that this submission trains."""
        names = {r.name for r in todo}
        groups = {"": []}
        for run in todo:
            groups.setdefault(run.needs if run.needs in names else "", []).append(run)
        return [(k, v) for k, v in groups.items() if v]

    def alive(self, run):
        """Whether a queued or running run's job is still in Slurm (a second `run` leaves it alone)."""
        if self.cluster != "slurm":
            return state.status(self.spec.run_dir(run)) == state.RUNNING
        job_id = _job_id(self.spec.run_dir(run))
        if not job_id:
            return False
        try:
            return submitit.SlurmJob(os.path.join(self.spec.out_dir, ".submitit"), job_id).state not in ENDED
        except Exception:   # sacct unavailable: do not submit the run twice
            return True

    def submit(self, todo, states):
        """Submit `todo` (Runs); returns {run name: submitit Job}."""
        for run in todo:   # before any job starts: a job must not read an earlier 'failed' of its source
            earlier = state.read(self.spec.run_dir(run))
            state.write(self.spec.run_dir(run), state.QUEUED,
                        **{k: earlier[k] for k in ("total_seconds",) if k in earlier})
        submitted = {}
        for needs, runs in self.arrays(todo, states):
            dependency = f"afterok:{submitted[needs].job_id}" if needs else None
            ex = self.executor(dependency)
            fns = [TrainJob(r.name, r.argv, self.spec.run_dir(r), r.needs,
                            self.spec.run_dir(self.spec.by_name()[r.needs]) if r.needs else "",
                            plan.budget_folder(self.spec, r)) for r in runs]
            try:
                submitted_now = ex.submit_array(fns)
            except (OSError, subprocess.CalledProcessError) as e:
                raise UserError(f"submitting to Slurm failed ({e}): run this on a Slurm login node "
                                "(--cluster local runs the jobs on this machine)") from None
            for run, job in zip(runs, submitted_now):
                submitted[run.name] = job
                save_json({"job_id": job.job_id, "cluster": self.cluster},
                          os.path.join(self.spec.run_dir(run), "job.json"))
        return submitted


def _job_id(folder):
    try:
        with open(os.path.join(folder, "job.json")) as f:
            return json.load(f)["job_id"]
    except (OSError, ValueError, KeyError):
        return ""
