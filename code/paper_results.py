"""The paper's published numbers (Kim et al., CVPR 2021) that our tables set beside ours.

Only the R@1 of the relaxed contrastive loss in the three settings is recorded here (SPEC.md,
section 4); other cells show no paper value rather than a number typed from memory. Add entries
as (setting, dataset, method, metric): value, in percent.
"""

# setting: (source network, target network), as 'model-dim'.
PAPER_SETTINGS = {
    "self-transfer": ("bn_inception-512", "bn_inception-512"),
    "dimensionality reduction": ("bn_inception-512", "bn_inception-64"),
    "compression": ("resnet50-512", "resnet18-128"),
}

PAPER = {
    ("self-transfer", "cub", "Relaxed_Contra", "R@1"): 72.1,
    ("self-transfer", "cars", "Relaxed_Contra", "R@1"): 89.6,
    ("self-transfer", "SOP", "Relaxed_Contra", "R@1"): 79.8,
    ("dimensionality reduction", "cub", "Relaxed_Contra", "R@1"): 67.4,
    ("dimensionality reduction", "cars", "Relaxed_Contra", "R@1"): 86.5,
    ("dimensionality reduction", "SOP", "Relaxed_Contra", "R@1"): 76.3,
    ("compression", "cub", "Relaxed_Contra", "R@1"): 66.6,
    ("compression", "cars", "Relaxed_Contra", "R@1"): 86.0,
    ("compression", "SOP", "Relaxed_Contra", "R@1"): 78.4,
}


def setting_name(teacher, network):
    """The paper's name for learning `network` from `teacher` (both 'model-dim')."""
    if teacher is None:
        return "no source"
    (t_model, t_dim), (n_model, n_dim) = (s.rsplit("-", 1) for s in (teacher, network))
    if t_model != n_model:
        return "compression"
    if t_dim == n_dim:
        return "self-transfer"
    return "dimensionality reduction" if int(n_dim) < int(t_dim) else "dimension increase"


def paper_value(teacher, network, dataset, method, metric="R@1"):
    """The paper's number for this exact configuration, or None."""
    setting = setting_name(teacher, network)
    if PAPER_SETTINGS.get(setting) != (teacher, network):
        return None
    return PAPER.get((setting, dataset, method, metric))
