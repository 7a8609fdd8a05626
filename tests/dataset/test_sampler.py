import collections
import time

import pytest
import torch

from embedding_transfer.dataset import BalancedBatchSampler
from embedding_transfer.errors import UserError

# 20 classes with 1..5 images each, interleaved like a real dataset's order need not be.
LABELS = [c for c in range(20) for _ in range(1 + c % 5)][::-1]


def epoch(sampler):
    return [list(b) for b in sampler]


def test_batches_are_balanced():
    s = BalancedBatchSampler(LABELS, 12, 3, torch.Generator().manual_seed(0))
    assert len(s) == len(LABELS) // 12
    batches = epoch(s)
    assert len(batches) == len(s)
    for b in batches:
        assert len(b) == 12 and all(isinstance(i, int) for i in b)
        counts = collections.Counter(LABELS[i] for i in b)
        assert len(counts) == 4 and set(counts.values()) == {3}
    # every class is reachable, and images are drawn within their class only
    drawn = collections.Counter(LABELS[i] for _ in range(20) for b in epoch(s) for i in b)
    assert set(drawn) == set(LABELS)


def test_reproducible_and_epochs_differ():
    a = BalancedBatchSampler(LABELS, 12, 3, torch.Generator().manual_seed(1))
    b = BalancedBatchSampler(LABELS, 12, 3, torch.Generator().manual_seed(1))
    a1, a2 = epoch(a), epoch(a)
    assert a1 != a2
    assert [a1, a2] == [epoch(b), epoch(b)]
    torch.manual_seed(5)
    c = epoch(BalancedBatchSampler(LABELS, 12, 3))
    torch.manual_seed(5)
    assert c == epoch(BalancedBatchSampler(LABELS, 12, 3))


def test_resume_from_state():
    a = BalancedBatchSampler(LABELS, 12, 3, torch.Generator().manual_seed(2))
    epoch(a)
    state = a.get_state()
    nxt = epoch(a)
    b = BalancedBatchSampler(LABELS, 12, 3, torch.Generator().manual_seed(99))
    b.set_state(state)
    assert epoch(b) == nxt


def test_with_dataloader():
    data = torch.utils.data.TensorDataset(torch.arange(len(LABELS)), torch.tensor(LABELS))
    s = BalancedBatchSampler(LABELS, 6, 2, torch.Generator().manual_seed(0))
    batches = list(torch.utils.data.DataLoader(data, batch_sampler=s))
    assert len(batches) == len(LABELS) // 6
    assert all(len(set(y.tolist())) == 3 for _, y in batches)


@pytest.mark.parametrize("bs, ipc, match", [
    (10, 3, "--batch-size 10 is not divisible by --IPC 3"),
    (0, 3, "--batch-size must be a positive integer"),
    (12, 0, "--IPC must be a positive integer"),
    (12, True, "--IPC must be a positive integer"),
    (12.0, 3, "--batch-size must be a positive integer"),
    (42, 2, "21 distinct classes per batch, but the training split has only 20 classes"),
    (120, 60, "fewer than --batch-size 120"),
])
def test_validation(bs, ipc, match):
    with pytest.raises(UserError, match=match):
        BalancedBatchSampler(LABELS, bs, ipc)


def test_sop_scale_epoch_is_fast():
    # SOP train: 59,551 images, 11,318 classes, batch 90 x IPC 3 -> 661 batches.
    labels = (torch.arange(59551) * 11318 // 59551).tolist()
    s = BalancedBatchSampler(labels, 90, 3, torch.Generator().manual_seed(0))
    t = time.perf_counter()
    batches = epoch(s)
    assert time.perf_counter() - t < 5
    assert len(batches) == 661
    assert all(len({labels[i] for i in b}) == 30 for b in batches[:20])
