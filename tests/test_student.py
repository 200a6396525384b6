"""The latent-mining student: the teacher's graph head reproduced, invariances of the visible-token set, and KD."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from occau.losses.distill import DistillationConfig, DistillationLoss
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.models.megraphau import MEGRAPHAU_CONFIGS, MEGraphAU
from occau.models.student import STUDENT_CONFIGS, LatentStudent, StudentConfig, build_student

SMALL = StudentConfig(embed_dim=24, num_aus=5, dim=16, num_heads=2, depth=2, edge_depth=1)


def _latents(b: int = 3, k: int = 6, d: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random latents (B, 1+K, D) with sample i having K - 2i visible tokens; padded slots hold zeros, as MAE's."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, 1 + k, d, generator=g)
    pad = torch.zeros(b, 1 + k, dtype=torch.bool)
    for i in range(b):
        pad[i, 1 + max(k - 2 * i, 0) :] = True
    return tokens.masked_fill(pad.unsqueeze(-1), 0.0), pad


def _run(model: LatentStudent, tokens, pad):
    return model.forward_head(*model.forward_features(tokens, pad))


@pytest.fixture(scope="module")
def student() -> LatentStudent:
    torch.manual_seed(0)
    return LatentStudent(SMALL).eval()


def test_output_shapes_and_scale(student):
    out = _run(student, *_latents())
    assert out.probs.shape == (3, 5) and out.node_features.shape == (3, 5, 16)
    assert out.edge_features.shape == (3, 25, 16) and out.edge_logits.shape == (3, 25, 4)
    assert out.probs.min() >= 0 and out.probs.max() <= 1 + 1e-6  # cosine of non-negative vectors
    assert (out.node_features >= 0).all()  # gated GCN ends in a ReLU, as the teacher's


def test_invariant_to_visible_token_order(student):
    tokens, pad = _latents()
    ref = _run(student, tokens, pad)
    g = torch.Generator().manual_seed(1)
    perm_tokens, perm_pad = tokens.clone(), pad.clone()
    for b in range(tokens.shape[0]):
        order = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(tokens.shape[1] - 1, generator=g)])
        perm_tokens[b], perm_pad[b] = tokens[b, order], pad[b, order]
    assert not torch.equal(perm_pad, pad)  # the padding moved too, not only the visible tokens
    out = _run(student, perm_tokens, perm_pad)
    for name in ("probs", "node_features", "edge_features", "edge_logits"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-5, rtol=1e-5)


def test_invariant_to_padding_amount_and_content(student):
    tokens, pad = _latents()
    ref = _run(student, tokens, pad)
    extra = torch.randn(3, 4, 24) * 100  # junk in padded slots must not leak in
    more_tokens = torch.cat([tokens, extra], dim=1)
    more_pad = torch.cat([pad, torch.ones(3, 4, dtype=torch.bool)], dim=1)
    out = _run(student, more_tokens, more_pad)
    torch.testing.assert_close(out.probs, ref.probs, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.edge_features, ref.edge_features, atol=1e-5, rtol=1e-5)
    # Each sample's result equals running it alone, unpadded (eval mode: BatchNorm uses running statistics).
    for b in range(3):
        n = int((~pad[b]).sum())
        alone = _run(student, tokens[b : b + 1, :n], pad[b : b + 1, :n])
        torch.testing.assert_close(alone.probs, ref.probs[b : b + 1], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("use_cls", [True, False])
def test_no_visible_token_gives_finite_default(use_cls):
    torch.manual_seed(0)
    model = LatentStudent(StudentConfig(**{**SMALL.__dict__, "use_cls": use_cls}))
    tokens, pad = _latents(b=2, k=4)
    pad[:, 1:] = True  # nothing visible in either sample
    tokens = tokens.requires_grad_(True)
    out = _run(model.train(), tokens, pad)
    assert torch.isfinite(out.probs).all() and torch.isfinite(out.edge_logits).all()
    out.probs.sum().backward()
    assert torch.isfinite(tokens.grad).all()
    assert tokens.grad[:, 1:].abs().sum() == 0  # padded latents get no gradient
    if not use_cls:  # nothing at all to read: the output is the learned default, the same for any input
        model.eval()
        other = _run(model, torch.randn_like(tokens), pad)
        torch.testing.assert_close(other.probs, _run(model, tokens.detach(), pad).probs)
        torch.testing.assert_close(other.probs[0], other.probs[1])


def test_graph_head_is_the_teachers(reference_dir):
    """Initialised from the official MEFL checkpoint, the student's head maps the teacher's GCN inputs exactly as
    the official code does (megraphau_head fixture: resnet18, C = 128, N = 12)."""
    ref = reference_dir / "megraphau_head"
    weights = {
        k: v.float() if v.is_floating_point() else v
        for k, v in load_file(ref / "mefl_head_weights.safetensors").items()
    }
    io = load_file(ref / "io.safetensors")
    model = build_student("student_tiny_synth_bp4d")
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
    assert len(build_student("student_tiny_synth_bp4d").init_from_teacher(teacher)) > 0
    with pytest.raises(ValueError, match="does not fit"):
        build_student("student_vitb_bp4d").init_from_teacher(teacher)  # C = 512 vs the resnet18 teacher's 128
    with pytest.raises(KeyError, match="lacks"):
        build_student("student_tiny_synth_bp4d").init_from_teacher({k: v for k, v in teacher.items() if "gnn" not in k})


def test_presets_match_teacher_widths():
    assert STUDENT_CONFIGS["student_vitb_bp4d"].dim == MEGRAPHAU_CONFIGS["resnet50_bp4d"].node_dim == 512
    assert STUDENT_CONFIGS["student_vitb_disfa"].num_aus == MEGRAPHAU_CONFIGS["resnet50_disfa"].num_aus == 8
    assert STUDENT_CONFIGS["student_tiny_synth_bp4d"].dim == MEGRAPHAU_CONFIGS["resnet18"].node_dim == 128
    with pytest.raises(ValueError, match="num_heads"):
        StudentConfig(dim=100, num_heads=8)
    with pytest.raises(ValueError, match="unknown student preset"):
        build_student("nope")


def test_end_to_end_from_mae_visible_latents():
    """Through the real encode_visible: each face's prediction depends on its own visible patches only."""
    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(
        MAEConfig(img_size=32, patch_size=8, embed_dim=24, depth=1, num_heads=2), decoder=False
    ).eval()
    model = LatentStudent(SMALL).eval()
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
    tokens, pad = _latents(b=4, k=6)
    labels = (torch.rand(4, 5) > 0.5).float()
    crit = DistillationLoss(DistillationConfig(edge_logits=1.0, relation=0.1))
    terms = crit(_run(model, tokens, pad), _run(teacher, tokens, pad), labels)
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(p.grad is None for p in teacher.parameters())

    teacher.eval()
    with torch.no_grad():
        target = _run(teacher, tokens, pad)
    kd = DistillationLoss(DistillationConfig(au=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss = kd(_run(model, tokens, pad), target)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
