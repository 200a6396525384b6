"""WA loss, edge loss and distillation: the official reference values, hand-computed cases and invariants."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from occau.data.relations import relation_labels, relation_valid
from occau.losses.distill import DISTILLATION_PRESETS, DistillationConfig, DistillationLoss, edge_logits_kl
from occau.losses.edge import edge_loss
from occau.losses.wa import WeightedAsymmetricLoss
from occau.models.outputs import AUOutput

BP4D_FOLD1_WEIGHTS = [1.342985, 1.689665, 1.248091, 0.561356, 0.433044, 0.435894,
                      0.457287, 0.541004, 1.408054, 0.722762, 1.493145, 1.666711]  # fmt: skip


@pytest.fixture(scope="module")
def wa_ref(reference_dir):
    return load_file(reference_dir / "wa_loss" / "io.safetensors")


# --- WA loss -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [True, False])
def test_wa_loss_matches_official(wa_ref, weighted):
    suffix = "weighted" if weighted else "unweighted"
    x = wa_ref["x"].clone().requires_grad_(True)
    loss = WeightedAsymmetricLoss(weight=wa_ref["weight"] if weighted else None)(x, wa_ref["y"])
    loss.backward()
    expected = wa_ref[f"loss_{suffix}"]
    assert loss.dtype == expected.dtype  # float64 weights promote the loss, as upstream
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(x.grad, wa_ref[f"grad_x_{suffix}"], atol=1e-6, rtol=1e-6)


def test_wa_loss_weights_are_the_bp4d_fold1_file(wa_ref):
    torch.testing.assert_close(wa_ref["weight"], torch.tensor(BP4D_FOLD1_WEIGHTS, dtype=torch.float64))


def test_wa_loss_hand_computed():
    # positive: -log(0.8); negative: -sg(0.3) * log(0.7); mean over 2 entries.
    x = torch.tensor([[0.8, 0.3]], requires_grad=True)
    loss = WeightedAsymmetricLoss()(x, torch.tensor([[1.0, 0.0]]))
    expected = -(math.log(0.8) + 0.3 * math.log(0.7)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # The focusing factor is a constant: d/dx [-0.3 log(1 - x)] / 2 = 0.3 / 0.7 / 2, not the full product rule.
    torch.testing.assert_close(x.grad, torch.tensor([[-1 / 0.8 / 2, 0.3 / 0.7 / 2]]))


def test_wa_loss_does_not_touch_grad_mode():
    with torch.no_grad():
        WeightedAsymmetricLoss()(torch.rand(2, 3), torch.ones(2, 3))
        assert not torch.is_grad_enabled()


def test_wa_loss_label_mask(wa_ref):
    x, y, w = wa_ref["x"], wa_ref["y"], wa_ref["weight"]
    crit = WeightedAsymmetricLoss(weight=w)
    mask = torch.ones_like(y, dtype=torch.bool)
    torch.testing.assert_close(crit(x, y, mask), wa_ref["loss_weighted"], atol=1e-6, rtol=1e-6)

    mask[1, 3] = mask[2, 7] = False
    xa = x.clone().requires_grad_(True)
    la = crit(xa, y, mask)
    la.backward()
    # Whatever sits at the unknown entries (a label 9, a NaN score) changes nothing.
    yb, xb = y.clone(), x.clone()
    yb[1, 3], yb[2, 7], xb[1, 3] = 9.0, 1.0, float("nan")
    xb.requires_grad_(True)
    lb = crit(xb, yb, mask)
    lb.backward()
    torch.testing.assert_close(la, lb)
    assert xb.grad[1, 3] == 0 and xb.grad[2, 7] == 0
    torch.testing.assert_close(xa.grad, xb.grad)
    # Normalised by the known entries: equal to the mean over the known elements of the per-element loss.
    per_elem = torch.stack([WeightedAsymmetricLoss(weight=w[j : j + 1])(x[i : i + 1, j : j + 1], y[i : i + 1, j : j + 1])
                            for i in range(4) for j in range(12)]).view(4, 12)  # fmt: skip
    torch.testing.assert_close(la, per_elem[mask].mean())


# --- edge loss -----------------------------------------------------------------------------------------------------


def test_relation_labels_convention(wa_ref):
    torch.testing.assert_close(relation_labels(wa_ref["y"]), wa_ref["relations"])
    rel = relation_labels(torch.tensor([[1.0, 0.0, 1.0]])).view(3, 3)
    # row j (end), column k (start): 2*a_j + a_k
    assert rel.tolist() == [[3, 2, 3], [1, 0, 1], [3, 2, 3]]
    with pytest.raises(ValueError, match="0 or 1"):
        relation_labels(torch.tensor([[1.0, 9.0]]))


def test_edge_loss_matches_official(wa_ref):
    loss = edge_loss(wa_ref["edge_logits"], wa_ref["relations"])
    torch.testing.assert_close(loss, wa_ref["edge_loss"], atol=1e-6, rtol=1e-6)
    wa = WeightedAsymmetricLoss(weight=wa_ref["weight"])(wa_ref["x"], wa_ref["y"])
    torch.testing.assert_close(wa + 0.05 * loss, wa_ref["total_loss_lam0.05"], atol=1e-6, rtol=1e-6)
    all_valid = torch.ones_like(wa_ref["relations"], dtype=torch.bool)
    torch.testing.assert_close(edge_loss(wa_ref["edge_logits"], wa_ref["relations"], all_valid), loss)


def test_edge_loss_valid_mask():
    label_mask = torch.tensor([[True, False, True]])
    valid = relation_valid(label_mask).view(3, 3)
    assert valid.tolist() == [[True, False, True], [False, False, False], [True, False, True]]
    logits = torch.randn(1, 9, 4, generator=torch.Generator().manual_seed(0))
    rel = relation_labels(torch.tensor([[1.0, 0.0, 0.0]]))
    expected = torch.nn.functional.cross_entropy(logits[0][valid.flatten()], rel[0][valid.flatten()])
    torch.testing.assert_close(edge_loss(logits, rel, valid.view(1, 9)), expected)
    # Invalid entries may hold anything, even an out-of-range class.
    rel_bad = rel.clone()
    rel_bad[0, 1] = 17
    torch.testing.assert_close(edge_loss(logits, rel_bad, valid.view(1, 9)), expected)


# --- distillation --------------------------------------------------------------------------------------------------


def _outputs(seed: int, b: int = 2, n: int = 4, c: int = 8, grad: bool = False) -> AUOutput:
    g = torch.Generator().manual_seed(seed)
    t = [torch.rand(b, n, generator=g), torch.randn(b, n, c, generator=g), torch.randn(b, n * n, c, generator=g),
         torch.randn(b, n * n, 4, generator=g)]  # fmt: skip
    return AUOutput(*[x.requires_grad_(grad) for x in t])


@pytest.mark.parametrize("distance", ["mse", "cosine"])
def test_kd_terms_zero_when_student_equals_teacher(distance):
    teacher = _outputs(0)
    student = AUOutput(*(x.clone() for x in (teacher.probs, teacher.node_features, teacher.edge_features,
                                              teacher.edge_logits)))  # fmt: skip
    cfg = DistillationConfig(au=0.0, edge_logits=1.0, temperature=3.0, feature_distance=distance)
    terms = DistillationLoss(cfg)(student, teacher)
    assert set(terms) == {"node", "edge", "edge_logits", "total"}
    for value in terms.values():
        assert abs(value.item()) < 1e-6


def test_kd_hand_computed_and_total():
    teacher = _outputs(0)
    student = _outputs(1)
    labels = (torch.rand(2, 4, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    cfg = DistillationConfig(au=1.0, node=0.5, edge=2.0, edge_logits=0.3, relation=0.1, temperature=2.0)
    terms = DistillationLoss(cfg)(student, teacher, labels)
    torch.testing.assert_close(terms["node"], ((student.node_features - teacher.node_features) ** 2).mean())
    torch.testing.assert_close(terms["edge"], ((student.edge_features - teacher.edge_features) ** 2).mean())
    p_t = torch.softmax(teacher.edge_logits / 2, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(student.edge_logits / 2, -1))).sum(-1).mean() * 4
    torch.testing.assert_close(terms["edge_logits"], kl)
    torch.testing.assert_close(terms["relation"], edge_loss(student.edge_logits, relation_labels(labels)))
    torch.testing.assert_close(terms["au"], WeightedAsymmetricLoss()(student.probs, labels))
    expected = (
        terms["au"] + 0.5 * terms["node"] + 2 * terms["edge"] + 0.3 * terms["edge_logits"] + 0.1 * terms["relation"]
    )
    torch.testing.assert_close(terms["total"], expected)
    cos = DistillationLoss(DistillationConfig(au=0.0, edge=0.0, feature_distance="cosine"))(student, teacher)
    s, t = student.node_features, teacher.node_features
    torch.testing.assert_close(cos["node"], 1 - ((s * t).sum(-1) / (s.norm(dim=-1) * t.norm(dim=-1))).mean())


def test_graph_input_kd_reads_the_graph_inputs_only():
    """kd_features="graph_input" matches f_v / f_e: changing the graph outputs leaves it unchanged."""
    teacher, student = _outputs(0), _outputs(1)
    for out, seed in ((teacher, 2), (student, 3)):
        g = torch.Generator().manual_seed(seed)
        out.node_inputs, out.edge_inputs = torch.randn(2, 4, 8, generator=g), torch.randn(2, 16, 8, generator=g)
    cfg = DistillationConfig(au=0.0, node=1.0, edge=1.0, kd_features="graph_input")
    assert cfg.teacher_fields == ("node_inputs", "edge_inputs")
    terms = DistillationLoss(cfg)(student, teacher)
    torch.testing.assert_close(terms["node"], ((student.node_inputs - teacher.node_inputs) ** 2).mean())
    torch.testing.assert_close(terms["edge"], ((student.edge_inputs - teacher.edge_inputs) ** 2).mean())
    student.node_features = student.node_features + 10
    torch.testing.assert_close(DistillationLoss(cfg)(student, teacher)["node"], terms["node"])
    with pytest.raises(ValueError, match="kd_features"):
        DistillationConfig(kd_features="graph_middle")


def test_kl_is_nonnegative_and_zero_only_at_match():
    s, t = torch.randn(3, 16, 4), torch.randn(3, 16, 4)
    assert edge_logits_kl(s, t, 2.0) > 0
    assert edge_logits_kl(t + 5.0, t, 2.0).abs() < 1e-6  # softmax is shift-invariant


def test_kd_gradient_reaches_student_not_teacher():
    teacher, student = _outputs(0, grad=True), _outputs(1, grad=True)
    labels = torch.ones(2, 4)
    cfg = DistillationConfig(edge_logits=1.0)
    DistillationLoss(cfg)(student, teacher, labels)["total"].backward()
    for x in (student.probs, student.node_features, student.edge_features, student.edge_logits):
        assert x.grad is not None and x.grad.abs().sum() > 0
    for x in (teacher.probs, teacher.node_features, teacher.edge_features, teacher.edge_logits):
        assert x.grad is None


def test_ablations_are_configuration():
    teacher, student = _outputs(0), _outputs(1)
    labels = torch.ones(2, 4)
    assert set(DistillationLoss(DISTILLATION_PRESETS["no_kd"])(student, None, labels)) == {"au", "total"}
    assert set(DistillationLoss(DISTILLATION_PRESETS["node_only"])(student, teacher, labels)) == {"au", "node", "total"}
    assert set(DistillationLoss(DISTILLATION_PRESETS["edge_only"])(student, teacher, labels)) == {"au", "edge", "total"}
    with pytest.raises(ValueError, match="no teacher"):
        DistillationLoss(DISTILLATION_PRESETS["full"])(student, None, labels)
    with pytest.raises(ValueError, match="feature_distance"):
        DistillationConfig(feature_distance="l1")
