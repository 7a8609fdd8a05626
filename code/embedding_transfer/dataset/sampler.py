"""Class-balanced batches (the reference's `BalancedSampler`, `--IPC`)."""
import torch
from torch.utils.data import Sampler

from ..errors import UserError


def _positive_int(value, flag):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{flag} must be a positive integer, got {value!r}.")


class BalancedBatchSampler(Sampler):
    """Batch sampler: each batch is `batch_size // images_per_class` distinct classes drawn
    uniformly, `images_per_class` images of each drawn uniformly with replacement (a class with
    fewer images repeats some); `len(labels) // batch_size` batches per epoch.

    Use as `DataLoader(dataset, batch_sampler=BalancedBatchSampler(dataset.ys, 90, 3, gen))`.
    Randomness comes only from `generator` (a torch.Generator; default: one seeded from torch's
    global RNG), which advances from epoch to epoch, so epochs differ and a seed reproduces the
    whole run. A whole epoch is drawn when iteration starts, hence the generator state saved
    after an epoch (`get_state`) resumes exactly at the next one (`set_state`).
    """

    def __init__(self, labels, batch_size, images_per_class, generator=None):
        _positive_int(batch_size, "--batch-size")
        _positive_int(images_per_class, "--IPC")
        if batch_size % images_per_class:
            raise UserError(f"--batch-size {batch_size} is not divisible by --IPC "
                            f"{images_per_class}: a batch holds whole groups of --IPC images "
                            f"per class. Choose a multiple of {images_per_class}.")
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        self.batch_size, self.images_per_class = batch_size, images_per_class
        self.classes_per_batch = batch_size // images_per_class
        self.num_batches = len(labels) // batch_size
        if self.num_batches == 0:
            raise UserError(f"the training split has {len(labels)} images, fewer than "
                            f"--batch-size {batch_size}: no batch can be drawn. Lower --batch-size.")
        # Indices grouped by class, once: class c's images are order[start[c]:start[c]+count[c]].
        classes, self.count = torch.unique(labels, return_counts=True)
        if len(classes) < self.classes_per_batch:
            raise UserError(f"--batch-size {batch_size} / --IPC {images_per_class} = "
                            f"{self.classes_per_batch} distinct classes per batch, but the "
                            f"training split has only {len(classes)} classes. Lower --batch-size "
                            f"or raise --IPC.")
        self.order = torch.argsort(labels, stable=True)
        self.start = torch.cumsum(self.count, 0) - self.count
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        self.generator = generator

    def __len__(self):
        return self.num_batches

    def __iter__(self):
        g, m = self.generator, self.images_per_class
        # Classes without replacement within a batch: one permutation per batch (O(C), fine for
        # SOP's 11k classes x 661 batches), then all image draws of the epoch at once.
        cls = torch.stack([torch.randperm(len(self.count), generator=g)[:self.classes_per_batch]
                           for _ in range(self.num_batches)])  # (num_batches, classes_per_batch)
        cls = cls.repeat_interleave(m, dim=1)  # (num_batches, batch_size), m copies per class
        offset = (torch.rand(cls.shape, generator=g, dtype=torch.float64) * self.count[cls]).long()
        batches = self.order[self.start[cls] + offset].tolist()
        return iter(batches)

    def get_state(self):
        return self.generator.get_state()

    def set_state(self, state):
        self.generator.set_state(state)


class RankBatchSampler(Sampler):
    """This process's share of each global batch, every index paired with an augmentation seed.

    Wraps a batch sampler of global batches (the same on every rank: same seed). Seeds are drawn
    per image from `generator`, so an image's augmentation depends on the seed and the batch order
    only, not on which rank or data-loader worker loads it: one process, torchrun with N processes
    and any --workers see the same augmented batches. Rank r takes the r-th contiguous slice.
    """

    def __init__(self, batch_sampler, generator, rank=0, world_size=1):
        self.batch_sampler, self.generator = batch_sampler, generator
        self.rank, self.world_size = rank, world_size
        size = getattr(batch_sampler, "batch_size", None)
        if size is not None and size % world_size:
            raise UserError(f"--batch-size {size} (the global batch) must be divisible by the number "
                            f"of processes ({world_size}).")

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        for batch in self.batch_sampler:
            seeds = torch.randint(2**62, (len(batch),), generator=self.generator).tolist()
            share = len(batch) // self.world_size
            lo = self.rank * share
            yield list(zip(batch[lo:lo + share], seeds[lo:lo + share]))
