"""The latent-mining student: the teacher's graph head reproduced, invariances of the visible-token set, and KD."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from occau.losses.distill import DistillationConfig, DistillationLoss
from occau.models.mae import MAEConfig, MaskedAutoencoderViT, VisibleLatents, visible_ids
from occau.models.megraphau import MEGRAPHAU_CONFIGS, MEGraphAU
from occau.models.student import STUDENT_CONFIGS, LatentStudent, StudentConfig
from occau.training.config import model_config

SMALL = StudentConfig(embed_dim=24, num_patches=16, num_aus=5, dim=16, num_heads=2, depth=2, edge_depth=1)
READOUTS = ("grid", "set")


def _small(readout: str = "grid", **changes) -> LatentStudent:
    torch.manual_seed(0)
    return LatentStudent(replace(SMALL, readout=readout, **changes))


def _latents(b: int = 3, k: int = 6, d: int = 24, L: int = 16, seed: int = 0) -> VisibleLatents:
    """Random latents as ``encode_visible`` lays them out: sample i has K - 2i visible cells (random ones, in
    raster order), padded slots hold zeros and point at occluded cells."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, 1 + k, d, generator=g)
    token_mask = torch.ones(b, L, dtype=torch.bool)
    for i in range(b):
        token_mask[i, torch.randperm(L, generator=g)[: max(k - 2 * i, 0)]] = False
    ids_keep, padding = visible_ids(token_mask)
    ids_keep = torch.cat([ids_keep, ids_keep.new_zeros(b, k - ids_keep.shape[1])], 1)  # pad to K slots
    padding = torch.cat([padding, padding.new_ones(b, k - padding.shape[1])], 1)
    pad = torch.cat([padding.new_zeros(b, 1), padding], 1)
    return VisibleLatents(tokens.masked_fill(pad.unsqueeze(-1), 0.0), pad, ids_keep, token_mask)


def _permuted(latents: VisibleLatents, seed: int = 1) -> VisibleLatents:
    """The same faces with their (token, cell) slots in another order, padding moved too."""
    g = torch.Generator().manual_seed(seed)
    tokens, pad, ids = latents.tokens.clone(), latents.padding_mask.clone(), latents.ids_keep.clone()
    for b in range(tokens.shape[0]):
        order = torch.randperm(ids.shape[1], generator=g)
        tokens[b, 1:], pad[b, 1:], ids[b] = tokens[b, 1 + order], pad[b, 1 + order], ids[b, order]
    return VisibleLatents(tokens, pad, ids, latents.token_mask)


def _assert_same(a, b, atol=1e-5):
    for name in ("probs", "node_features", "edge_features", "edge_logits"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=1e-5)


@pytest.mark.parametrize("readout", READOUTS)
def test_output_shapes_and_scale(readout):
    out = _small(readout).eval()(_latents())
    assert out.probs.shape == (3, 5) and out.node_features.shape == (3, 5, 16)
    assert out.edge_features.shape == (3, 25, 16) and out.edge_logits.shape == (3, 25, 4)
    assert out.probs.min() >= 0 and out.probs.max() <= 1 + 1e-6  # cosine of non-negative vectors
    assert (out.node_features >= 0).all()  # gated GCN ends in a ReLU, as the teacher's


@pytest.mark.parametrize("readout", READOUTS)
def test_invariant_to_visible_token_order(readout):
    model, latents = _small(readout).eval(), _latents()
    moved = _permuted(latents)
    assert not torch.equal(moved.padding_mask, latents.padding_mask)  # the padding moved too
    _assert_same(model(moved), model(latents))


@pytest.mark.parametrize("readout", READOUTS)
def test_invariant_to_padding_amount_and_content(readout):
    model, latents = _small(readout).eval(), _latents()
    ref = model(latents)
    junk = torch.randn(3, 4, 24) * 100  # junk in padded slots must not leak in
    more = VisibleLatents(torch.cat([latents.tokens, junk], 1),
                          torch.cat([latents.padding_mask, torch.ones(3, 4, dtype=torch.bool)], 1),
                          torch.cat([latents.ids_keep, torch.randint(16, (3, 4))], 1), latents.token_mask)
    _assert_same(model(more), ref)
    for b in range(3):  # each face alone, unpadded, gives its batched result (eval: BatchNorm running statistics)
        n = 1 + int((~latents.padding_mask[b]).sum())
        alone = VisibleLatents(latents.tokens[b:b + 1, :n], latents.padding_mask[b:b + 1, :n],
                               latents.ids_keep[b:b + 1, :n - 1], latents.token_mask[b:b + 1])
        torch.testing.assert_close(model(alone).probs, ref.probs[b:b + 1], atol=1e-6, rtol=1e-6)


def test_grid_readout_knows_where_a_latent_was_and_set_readout_does_not():
    """The same latents placed in other cells: the grid readout's answer changes, the order-free one's does not."""
    latents = _latents()
    elsewhere = VisibleLatents(latents.tokens, latents.padding_mask, (latents.ids_keep + 5) % 16,
                               latents.token_mask[:, torch.arange(16).sub(5) % 16])
    grid, order_free = _small("grid").eval(), _small("set").eval()
    assert not torch.allclose(grid(elsewhere).probs, grid(latents).probs, atol=1e-4)
    _assert_same(order_free(elsewhere), order_free(latents))


@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("use_cls", [True, False])
def test_no_visible_token_gives_finite_default(readout, use_cls):
    model = _small(readout, use_cls=use_cls)
    latents = _latents(b=2, k=4)
    latents.token_mask[:] = True  # nothing visible in either sample
    latents.padding_mask[:, 1:] = True
    tokens = latents.tokens.masked_fill(latents.padding_mask.unsqueeze(-1), 0.0).requires_grad_(True)
    latents.tokens = tokens
    out = model.train()(latents)
    assert torch.isfinite(out.probs).all() and torch.isfinite(out.edge_logits).all()
    out.probs.sum().backward()
    assert torch.isfinite(tokens.grad).all()
    assert tokens.grad[:, 1:].abs().sum() == 0  # padded latents get no gradient
    if not use_cls:  # nothing at all to read: the output is the learned default, the same for any input
        model.eval()
        other = model(VisibleLatents(torch.randn_like(tokens), latents.padding_mask, latents.ids_keep,
                                     latents.token_mask))
        torch.testing.assert_close(other.probs, model(latents).probs)
        torch.testing.assert_close(other.probs[0], other.probs[1])


def test_student_rejects_latents_of_another_grid():
    latents = _latents(L=25)
    with pytest.raises(ValueError, match="25-patch grid"):
        _small()(latents)


def test_graph_head_is_the_teachers(reference_dir):
    """Initialised from the official MEFL checkpoint, the student's head maps the teacher's GCN inputs exactly as
    the official code does (megraphau_head fixture: resnet18, C = 128, N = 12)."""
    ref = reference_dir / "megraphau_head"
    weights = {
        k: v.float() if v.is_floating_point() else v
        for k, v in load_file(ref / "mefl_head_weights.safetensors").items()
    }
    io = load_file(ref / "io.safetensors")
    model = LatentStudent(STUDENT_CONFIGS["student_tiny_synth_bp4d"])
    copied = model.init_from_teacher(weights)
    assert "sc" in copied and "gnn.E2.weight" in copied and "edge_fc.bias" in copied
    model.eval()
    with torch.no_grad():
        out = model.forward_head(io["mefl_eval_gnn_in_nodes"], io["mefl_eval_gnn_in_edges"])
    torch.testing.assert_close(out.probs, io["mefl_eval_cl"], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out.node_features, io["mefl_eval_gnn_out_nodes"], atol=5e-4, rtol=1e-4)
    torch.testing.assert_close(out.edge_features, io["mefl_eval_gnn_out_edges"], atol=5e-4, rtol=1e-4)
    torch.testing.assert_close(out.edge_logits, io["mefl_eval_cl_edge"], atol=5e-4, rtol=1e-4)


def test_init_from_teacher_checks_keys_and_shapes():
    teacher = MEGraphAU(MEGRAPHAU_CONFIGS["resnet18"]).state_dict()
    assert len(LatentStudent(STUDENT_CONFIGS["student_tiny_synth_bp4d"]).init_from_teacher(teacher)) > 0
    with pytest.raises(ValueError, match="does not fit"):
        LatentStudent(STUDENT_CONFIGS["student_vitb_bp4d"]).init_from_teacher(teacher)  # C = 512 vs the resnet18 teacher's 128
    with pytest.raises(KeyError, match="lacks"):
        LatentStudent(STUDENT_CONFIGS["student_tiny_synth_bp4d"]).init_from_teacher({k: v for k, v in teacher.items() if "gnn" not in k})


def test_presets_match_teacher_widths():
    assert STUDENT_CONFIGS["student_vitb_bp4d"].dim == MEGRAPHAU_CONFIGS["resnet50_bp4d"].node_dim == 512
    assert STUDENT_CONFIGS["student_vitb_disfa"].num_aus == MEGRAPHAU_CONFIGS["resnet50_disfa"].num_aus == 8
    assert STUDENT_CONFIGS["student_tiny_synth_bp4d"].dim == MEGRAPHAU_CONFIGS["resnet18"].node_dim == 128
    with pytest.raises(ValueError, match="num_heads"):
        StudentConfig(dim=100, num_heads=8)
    with pytest.raises(ValueError, match="unknown student architecture 'nope'"):
        model_config("student", {"arch": "nope"})
    assert model_config("student", {"arch": "student_tiny_synth_bp4d", "num_aus": 8}) == STUDENT_CONFIGS[
        "student_tiny_synth_disfa"]


def test_end_to_end_from_mae_visible_latents():
    """Through the real encode_visible: each face's prediction depends on its own visible patches only."""
    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(
        MAEConfig(img_size=32, patch_size=8, embed_dim=24, depth=1, num_heads=2), decoder=False
    ).eval()
    model = LatentStudent(SMALL).eval()  # 16 cells: the 4 x 4 grid of a 32-px image in 8-px patches
    imgs = torch.randn(2, 3, 32, 32)
    token_mask = torch.zeros(2, 16, dtype=torch.bool)
    token_mask[0, :8] = True  # upper half occluded
    token_mask[1, :] = True  # fully occluded
    with torch.no_grad():
        both = model(mae.encode_visible(imgs, token_mask))
        alone = model(mae.encode_visible(imgs[:1], token_mask[:1]))
        changed = imgs.clone()
        changed[0, :, :16] = 5.0  # repaint only the occluded half
        repainted = model(mae.encode_visible(changed, token_mask))
    assert torch.isfinite(both.probs).all()
    torch.testing.assert_close(alone.probs, both.probs[:1], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(repainted.probs, both.probs, atol=1e-6, rtol=1e-6)


def test_distillation_trains_student_not_teacher():
    """KD through the student: gradients reach every student parameter, none reach the teacher, and a few steps
    pull the student's graph toward the teacher's."""
    torch.manual_seed(0)
    teacher = LatentStudent(SMALL)  # any AUOutput producer with parameters serves as a stand-in teacher here
    model = LatentStudent(SMALL)
    latents = _latents(b=4, k=6)
    labels = (torch.rand(4, 5) > 0.5).float()
    crit = DistillationLoss(DistillationConfig(edge_logits=1.0, relation=0.1))
    terms = crit(model(latents), teacher(latents), labels)
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(p.grad is None for p in teacher.parameters())

    teacher.eval()
    with torch.no_grad():
        target = teacher(latents)
    kd = DistillationLoss(DistillationConfig(au=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss = kd(model(latents), target)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
