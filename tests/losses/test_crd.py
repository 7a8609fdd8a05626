import math

import pytest
import torch

from embedding_transfer.errors import UserError
from embedding_transfer.losses.crd import CRDLoss, sample_contrast_index

T_DIM, S_DIM, N_DATA, FEAT, K = 5, 6, 20, 4, 6


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def make_loss():
    torch.manual_seed(0)   # memory init
    return CRDLoss(t_dim=T_DIM, s_dim=S_DIM, n_data=N_DATA, feat_dim=FEAT, nce_k=K).double()


def batch(seed, N=5):
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(N_DATA, generator=g)[:N]
    contrast = torch.cat([index[:, None], torch.randint(N_DATA, (N, K), generator=g)], 1)
    return rand(N, T_DIM, seed=seed), rand(N, S_DIM, seed=seed + 1), index, contrast


def embed_loop(lin, x):
    W, b = lin.weight.tolist(), lin.bias.tolist()
    out = []
    for row in x.tolist():
        v = [sum(w * a for w, a in zip(wr, row)) + bi for wr, bi in zip(W, b)]
        n = math.sqrt(sum(c * c for c in v))
        out.append([c / n for c in v])
    return out


def scores_loop(v, memory, contrast, T):
    mem = memory.tolist()
    return [[math.exp(sum(a * b for a, b in zip(mem[j], v[i])) / T) for j in contrast[i].tolist()]
            for i in range(len(v))]


def nce_loop(scores, Z, n_data):
    N, m = len(scores), len(scores[0]) - 1
    total = 0.0
    for row in scores:
        x = [c / Z for c in row]
        total += math.log(x[0] / (x[0] + m / n_data + 1e-7))
        total += sum(math.log((m / n_data) / (c + m / n_data + 1e-7)) for c in x[1:])
    return -total / N


def crd_loop(loss, t, s, contrast, Z=None):
    """Loop restatement; Z=None means "first batch": Z from this batch's mean score * n_data."""
    v_t, v_s = embed_loop(loss.embed_t.linear, t), embed_loop(loss.embed_s.linear, s)
    out_t = scores_loop(v_t, loss.memory_s, contrast, loss.nce_t)
    out_s = scores_loop(v_s, loss.memory_t, contrast, loss.nce_t)
    if Z is None:
        Z = [sum(map(sum, o)) / (len(o) * len(o[0])) * N_DATA for o in (out_t, out_s)]
    return nce_loop(out_t, Z[0], N_DATA) + nce_loop(out_s, Z[1], N_DATA), Z, v_t, v_s


def test_init():
    loss = make_loss()
    bound = 1 / math.sqrt(FEAT / 3)
    for mem in (loss.memory_t, loss.memory_s):
        assert mem.shape == (N_DATA, FEAT) and mem.abs().max() <= bound
    assert loss.z_t.item() == -1 and loss.z_s.item() == -1
    assert {"memory_t", "memory_s", "z_t", "z_s"} <= set(loss.state_dict())


def test_two_batches_match_loop_with_fixed_z_and_memory_update():
    loss = make_loss()
    t, s, index, contrast = batch(1)
    mem_t, mem_s = loss.memory_t.clone(), loss.memory_s.clone()
    expected, Z, v_t, v_s = crd_loop(loss, t, s, contrast)
    assert loss(t, s, index, contrast).item() == pytest.approx(expected, rel=1e-10)
    assert [loss.z_t.item(), loss.z_s.item()] == pytest.approx(Z, rel=1e-12)

    # memory: the batch's slots moved halfway toward the new embeddings and re-normalised
    for mem, old, v in ((loss.memory_t, mem_t, v_t), (loss.memory_s, mem_s, v_s)):
        for r in range(N_DATA):
            if r in index.tolist():
                i = index.tolist().index(r)
                new = [0.5 * a + 0.5 * b for a, b in zip(old[r].tolist(), v[i])]
                n = math.sqrt(sum(c * c for c in new))
                assert mem[r].tolist() == pytest.approx([c / n for c in new], rel=1e-12)
            else:
                assert torch.equal(mem[r], old[r])

    # second batch: same Z, the updated memory
    t, s, index, contrast = batch(2)
    expected, _, _, _ = crd_loop(loss, t, s, contrast, Z)
    assert loss(t, s, index, contrast).item() == pytest.approx(expected, rel=1e-10)
    assert [loss.z_t.item(), loss.z_s.item()] == pytest.approx(Z, rel=1e-12)


def test_eval_mode_leaves_memory_alone():
    loss = make_loss().eval()
    mem = loss.memory_t.clone()
    loss(*batch(3))
    assert torch.equal(loss.memory_t, mem)


def test_z_and_memory_survive_state_dict_round_trip():
    loss = make_loss()
    loss(*batch(4))
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    resumed = CRDLoss(t_dim=T_DIM, s_dim=S_DIM, n_data=N_DATA, feat_dim=FEAT, nce_k=K).double()
    resumed.load_state_dict(state)
    b = batch(5)
    torch.testing.assert_close(resumed(*b), loss(*b), rtol=0, atol=0)
    assert resumed.z_t.item() == state["z_t"].item() and resumed.z_s.item() == state["z_s"].item()


def test_gradcheck_after_z_is_set():
    loss = make_loss()
    t, s, index, contrast = batch(6, N=3)
    loss(t, s, index, contrast)
    loss.eval()   # no memory update: the function must stay the same while gradcheck probes it
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, index, contrast),
                                    (t.requires_grad_(True), s.requires_grad_(True)))


def test_backward_after_a_later_batch_updated_the_buffers():
    """The memory update of a later batch must not change (or break) an earlier batch's gradient."""
    t, s, index, contrast = batch(7)
    t.requires_grad_(True)
    expected = torch.autograd.grad(make_loss()(t, s, index, contrast), t)[0]
    loss = make_loss()
    first = loss(t, s, index, contrast)
    loss(*batch(8))
    first.backward()   # the buffers were written in place after `first` was built
    assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    torch.testing.assert_close(t.grad, expected)


def test_contrast_index_shape_is_checked():
    t, s, index, contrast = batch(9)
    with pytest.raises(ValueError, match="nce_k"):
        make_loss()(t, s, index, contrast[:, :-1])


# ---- sample_contrast_index ----

def two_view_slot_labels(n_images=30, n_classes=5):
    labels = torch.arange(n_images) % n_classes
    return labels.repeat(2)   # slot v * n_images + i holds view v of image i


def test_sample_contrast_index_guarantees():
    slot_labels = two_view_slot_labels()
    index = torch.tensor([0, 7, 30, 37, 59])
    ci = sample_contrast_index(index, slot_labels, nce_k=1000, generator=torch.Generator().manual_seed(0))
    assert ci.shape == (5, 1001) and ci.dtype == torch.long
    assert torch.equal(ci[:, 0], index)
    assert ((ci >= 0) & (ci < len(slot_labels))).all()
    assert (slot_labels[ci[:, 1:]] != slot_labels[index][:, None]).all()
    # uniform over the allowed slots: with 1000 draws, (almost surely) all 48 of them appear
    allowed = set((slot_labels != slot_labels[0]).nonzero().flatten().tolist())
    assert set(ci[0, 1:].tolist()) == allowed


def test_sample_contrast_index_dominant_class():
    slot_labels = torch.zeros(200, dtype=torch.long)
    slot_labels[:3] = torch.tensor([1, 2, 3])   # 197 of 200 slots share class 0
    index = torch.arange(3, 13)
    ci = sample_contrast_index(index, slot_labels, nce_k=50, generator=torch.Generator().manual_seed(1))
    assert (ci[:, 1:] < 3).all()


def test_sample_contrast_index_reproducible():
    slot_labels, index = two_view_slot_labels(), torch.arange(10)
    a = sample_contrast_index(index, slot_labels, 16, generator=torch.Generator().manual_seed(3))
    b = sample_contrast_index(index, slot_labels, 16, generator=torch.Generator().manual_seed(3))
    c = sample_contrast_index(index, slot_labels, 16, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_contrast_index_impossible():
    with pytest.raises(UserError, match="at least two classes"):
        sample_contrast_index(torch.arange(4), torch.full((10,), 3), nce_k=5)
