"""What the optimizer sees: the authors' optimizers, the learning-rate rule for the losses' own
parameters, warm-up, and mixed precision."""
import torch

from .errors import UserError

OPTIMIZERS = ("adamw", "sgd", "adam", "rmsprop")
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PROXY_LR_FACTOR = 100   # Proxy-Anchor's proxies learn at 100x the base rate (the authors' recipe)


def build_optimizer(name, param_groups, lr, weight_decay, adam_eps=1.0):
    """The authors' optimizers. adam_eps: train_target's `adam` has eps=1 (sic), train_source's
    Adam's default 1e-8."""
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, eps=adam_eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, alpha=0.9, weight_decay=weight_decay, momentum=0.9)
    raise UserError(f"unknown --optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def param_groups(network, losses, lr):
    """Both trainers' rule: the network's trainable parameters (see EmbeddingNet.trainable_parameters)
    and the losses' own parameters at `lr`, except parameters named `proxies` (Proxy-Anchor's) at
    PROXY_LR_FACTOR x `lr`. pytorch-metric-learning's Proxy-NCA keeps its proxies under another
    name and learns at `lr` (the authors' script never gave them to its optimizer)."""
    groups = [{"params": [p for _, p in network.trainable_parameters()], "lr": lr}]
    named = [(n, p) for loss in losses for n, p in loss.named_parameters()]
    for is_proxy, factor in ((False, 1), (True, PROXY_LR_FACTOR)):
        params = [p for n, p in named if (n == "proxies") == is_proxy]
        if params:
            groups.append({"params": params, "lr": lr * factor})
    return groups


class Warmup:
    """The authors' warm-up (--warm W > 0): before epoch W only the network's embedding layer
    learns (the losses' own parameters, e.g. proxies, always do); from epoch W every parameter
    learns, BatchNorm's affine parameters included even under --bn-freeze 1 (their recipe, which
    trained the released sources; the statistics stay frozen, those layers staying in eval mode).
    Build it before DDP wraps the model: DDP only synchronises parameters that require gradients
    when it is built."""

    def __init__(self, model, epochs):
        self.epochs = epochs
        self.trunk = [p for n, p in model.trainable_parameters() if not n.startswith("model.embedding.")]
        self.set(epochs)

    def set(self, epoch):
        if self.epochs > 0:
            for p in self.trunk:
                p.requires_grad_(epoch >= self.epochs)


def grad_scaler(amp, device):
    """A GradScaler for --amp fp16 (float16 gradients underflow without it), else None."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None
