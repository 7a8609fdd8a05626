"""Data-parallel training with torchrun + DDP, kept in one place.

`torchrun --nproc_per_node=N code/train_target.py ...` runs one process per device (NCCL on
CUDA, gloo on the CPU). --batch-size stays the global batch: every rank draws the same global
batches and takes its contiguous share. Batch-wise losses must see the whole batch, as in one
process, so their inputs are gathered across ranks; each rank keeps the gradient of its own rows.
With DDP averaging gradients over ranks, that gradient is scaled by the world size, so that the
weights move exactly as in one process. Without torchrun every function here is a no-op.
"""
import builtins
import os
import shlex
import subprocess
import sys

import torch
import torch.distributed as dist

from .errors import UserError, warn


def launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(gpu_id):
    """This process's device: under torchrun, start the process group (one device per process);
    with --gpu-id -1 and several GPUs, run this command again under torchrun, one process per GPU
    (the authors' DataParallel, done the DDP way), and exit with its status; otherwise the
    reference's --gpu-id (select_device)."""
    if not launched_by_torchrun():
        if gpu_id == -1 and torch.cuda.device_count() > 1:
            raise SystemExit(relaunch(torch.cuda.device_count()))
        return select_device(gpu_id)
    if dist.is_initialized():
        return current_device()
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise UserError(f"torchrun started more processes per node than this machine has GPUs "
                            f"({torch.cuda.device_count()}): lower --nproc_per_node.")
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo")
    if not is_main():
        _silence_print()
    return current_device()


def select_device(gpu_id):
    """The reference's `--gpu-id N` -> cuda:N (-1: all GPUs, here the only one); the CPU (after one
    warning) where CUDA is absent."""
    if not torch.cuda.is_available():
        what = "all GPUs" if gpu_id == -1 else f"GPU {gpu_id}"
        warn(f"--gpu-id {gpu_id} asks for {what}, but CUDA is not available (no GPU or a CPU-only torch): "
             "running on the CPU, in one process.")
        return torch.device("cpu")
    if gpu_id == -1:   # all GPUs, and there is one (several relaunch under torchrun: distributed.init)
        gpu_id = 0
    if not 0 <= gpu_id < torch.cuda.device_count():
        raise UserError(f"--gpu-id {gpu_id}: this machine has {torch.cuda.device_count()} CUDA "
                        f"device(s), numbered 0..{torch.cuda.device_count() - 1}.")
    torch.cuda.set_device(gpu_id)
    return torch.device("cuda", gpu_id)


def relaunch(nproc, script=None, argv=None):
    """Run `script argv` (default: this process's command line) under torchrun with `nproc`
    processes on this machine; returns their exit status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           script or sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    print(f"--gpu-id -1: {nproc} processes, one per GPU: {shlex.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd)


def _silence_print():
    """Only rank 0 talks (as torchvision's references do): print() is a no-op elsewhere."""
    builtins.print = lambda *a, **k: None


def current_device():
    if torch.cuda.is_available() and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main():
    return rank() == 0


def shutdown():
    if dist.is_initialized():
        dist.destroy_process_group()


def prepare(model, device, channels_last=False, sync_bn=False):
    """The network on this process's device, with --channels-last and (under torchrun) --sync-bn."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if sync_bn and world_size() > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap(model, device, find_unused=False):
    """DDP around the model when distributed; returns (module to call, module to save/inspect)."""
    if not dist.is_initialized():
        return model, model
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=find_unused)
    return ddp, model


def all_gather_keep_grad(x):
    """[every process's x] (same shapes), this process's own entry being x itself, with its
    gradient; [x] without torchrun. (views.gather_views orders them into one batch.)"""
    if not dist.is_initialized():
        return [x]
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank()] = x
    return parts


def scale_grad(loss, factor):
    """The same value, `factor` times the gradient."""
    if factor == 1:
        return loss
    return loss * factor - (loss * (factor - 1)).detach()


def sync_loss_grads(module, gathered):
    """Gradients of a loss module's own parameters (proxies, regressors, embeddings), which DDP
    does not see. Gathered (batch-wise) losses computed them in full on every rank, times the
    world size (scale_grad): divide. Local losses computed a share on each rank: average."""
    if not dist.is_initialized() or module is None:
        return
    for p in module.parameters():
        if p.grad is None:
            continue
        if gathered:
            p.grad.div_(world_size())
        else:
            dist.all_reduce(p.grad)     # a sum: gloo has no average
            p.grad.div_(world_size())


def barrier():
    """Wait for every process (e.g. while rank 0 writes a file the others then read)."""
    if dist.is_initialized():
        dist.barrier()


def from_main(obj):
    """Rank 0's value of `obj` on every rank (e.g. the run folder that rank 0 chose)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag):
    """True on every rank when any rank says True (e.g. a time budget ran out), so all stop alike."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device=current_device())
    dist.all_reduce(t)
    return bool(t.item())


def mean_across_ranks(value):
    """A Python float averaged over ranks (for logging)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=current_device())
    dist.all_reduce(t)
    return float(t) / world_size()


def gather_embeddings(X, T, index, n):
    """Each rank's evaluation embeddings (X, labels T, dataset indices) -> all n rows in dataset
    order on every rank, so that Recall@K equals one process's."""
    if not dist.is_initialized():
        return X, T
    size = torch.tensor([len(index)], device=current_device())
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    m = int(max(s.item() for s in sizes))
    out = []
    for t in (X, T, index):
        t = t.to(current_device())
        pad = torch.zeros(m - len(t), *t.shape[1:], dtype=t.dtype, device=t.device)
        parts = [torch.empty(m, *t.shape[1:], dtype=t.dtype, device=t.device) for _ in range(world_size())]
        dist.all_gather(parts, torch.cat([t, pad]))
        out.append(torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)]).cpu())
    Xa, Ta, ia = out
    order = torch.argsort(ia)
    if len(ia) != n or not torch.equal(ia[order], torch.arange(n)):
        raise RuntimeError("distributed evaluation did not cover every image exactly once")
    return Xa[order], Ta[order]
