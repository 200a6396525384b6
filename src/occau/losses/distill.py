"""Node- and edge-level knowledge distillation from the ME-GraphAU teacher to the latent-mining student.

The student sees an occluded face through the MAE latents; the teacher sees the clean face. The student is trained
with the AU loss on its own probabilities plus feature distances to the teacher's graph: per-AU node features
(B, N, C) and AU-pair edge features (B, N*N, C), at the graph's output or its input (``kd_features``), and
optionally the teacher's softened edge-state distribution (KL with a temperature, Hinton-style ``T**2`` scaling).
Which terms are on is configuration (:data:`DISTILLATION_PRESETS`): a zero weight skips its term, so "no KD", "node
only" and "edge only" are the same code. Teacher tensors are always detached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occau.data.relations import relation_labels, relation_valid
from occau.losses.edge import edge_loss
from occau.losses.wa import WeightedAsymmetricLoss
from occau.models.outputs import AUOutput
from occau.runtime import at_least_fp32

FEATURE_DISTANCES = ("mse", "cosine")
# Which of the teacher's graph features KD matches: what its gated GCN outputs (the nodes its classifier scores) or
# what the GCN reads (f_v, GEM's f_e), i.e. the features the student's own copy of the graph head then processes.
KD_FEATURES = {"graph_output": ("node_features", "edge_features"), "graph_input": ("node_inputs", "edge_inputs")}


@dataclass(frozen=True)
class DistillationConfig:
    """Weights of the student objective; the total is ``sum(weight * term)`` over the non-zero weights."""

    au: float = 1.0  # WA loss of the student's probabilities against the AU labels
    node: float = 1.0  # distance between node features (B, N, C)
    edge: float = 1.0  # distance between edge features (B, N*N, C)
    edge_logits: float = 0.0  # KL(teacher || student) of the edge-state distributions at `temperature`
    relation: float = 0.0  # the student's own edge cross-entropy against label co-occurrences (stage-2 style)
    temperature: float = 1.0
    feature_distance: str = "mse"  # "mse" or "cosine" (1 - cosine similarity along C)
    kd_features: str = "graph_output"  # a key of KD_FEATURES: the graph's output or its input features

    def __post_init__(self):
        if self.kd_features not in KD_FEATURES:
            raise ValueError(f"kd_features must be one of {sorted(KD_FEATURES)}, got {self.kd_features!r}")
        if self.feature_distance not in FEATURE_DISTANCES:
            raise ValueError(f"feature_distance must be one of {FEATURE_DISTANCES}, got {self.feature_distance!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        for name in ("au", "node", "edge", "edge_logits", "relation"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name!r} must be >= 0, got {getattr(self, name)}")

    @property
    def needs_teacher(self) -> bool:
        return self.node > 0 or self.edge > 0 or self.edge_logits > 0

    @property
    def teacher_fields(self) -> tuple[str, ...]:
        """The ``AUOutput`` fields of the teacher that the KD terms read."""
        node, edge = KD_FEATURES[self.kd_features]
        wanted = ((node, self.node), (edge, self.edge), ("edge_logits", self.edge_logits))
        return tuple(field for field, weight in wanted if weight > 0)


DISTILLATION_PRESETS: dict[str, DistillationConfig] = {
    "full": DistillationConfig(),
    "no_kd": DistillationConfig(node=0.0, edge=0.0),
    "node_only": DistillationConfig(edge=0.0),
    "edge_only": DistillationConfig(node=0.0),
    "full_logits": DistillationConfig(edge_logits=1.0, temperature=2.0),
}


def feature_distance(student: Tensor, teacher: Tensor, kind: str = "mse") -> Tensor:
    """Mean distance between (..., C) features in at least fp32 (half-precision sums of squares over C overflow fp16
    and lose digits in bf16); the teacher side is detached."""
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} do not match teacher {tuple(teacher.shape)}")
    student, teacher = at_least_fp32(student), at_least_fp32(teacher.detach())
    if kind == "mse":
        return F.mse_loss(student, teacher)
    if kind == "cosine":
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    raise ValueError(f"unknown feature distance {kind!r}; known: {FEATURE_DISTANCES}")


def edge_logits_kl(student: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """``T**2 * KL(softmax(t/T) || softmax(s/T))`` per edge, mean over (B, N*N); logits (B, N*N, 4)."""
    if student.shape != teacher.shape:
        raise ValueError(f"student edge logits {tuple(student.shape)} do not match teacher {tuple(teacher.shape)}")
    log_p_s = F.log_softmax(at_least_fp32(student) / temperature, dim=-1)
    log_p_t = F.log_softmax(at_least_fp32(teacher.detach()) / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # (B, N*N)
    return kl.mean() * temperature**2


def _require(out: AUOutput, field: str, who: str) -> Tensor:
    value = getattr(out, field)
    if value is None:
        raise ValueError(f"{who} AUOutput has no {field}, which the distillation config needs")
    return value


class DistillationLoss(nn.Module):
    """Student objective from a :class:`DistillationConfig`; ``forward`` returns ``{term: value, 'total': sum}``.

    ``weight`` is the WA class-weight vector (N,) of the training fold. Only terms with a non-zero weight are
    computed and reported, so the teacher may be ``None`` when no KD term is on.
    """

    def __init__(self, config: DistillationConfig = DistillationConfig(), weight: Tensor | None = None):
        super().__init__()
        self.config = config
        self.wa = WeightedAsymmetricLoss(weight=weight)

    def forward(
        self,
        student: AUOutput,
        teacher: AUOutput | None,
        labels: Tensor | None = None,
        label_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        cfg = self.config
        if cfg.needs_teacher and teacher is None:
            raise ValueError(f"distillation config {cfg} has KD terms on but no teacher output was given")
        if (cfg.au > 0 or cfg.relation > 0) and labels is None:
            raise ValueError("the 'au' and 'relation' terms need AU labels")
        terms: dict[str, Tensor] = {}
        if cfg.au > 0:
            terms["au"] = self.wa(student.probs, labels, label_mask)
        node_field, edge_field = KD_FEATURES[cfg.kd_features]
        if cfg.node > 0:
            s, t = _require(student, node_field, "student"), _require(teacher, node_field, "teacher")
            terms["node"] = feature_distance(s, t, cfg.feature_distance)
        if cfg.edge > 0:
            s, t = _require(student, edge_field, "student"), _require(teacher, edge_field, "teacher")
            terms["edge"] = feature_distance(s, t, cfg.feature_distance)
        if cfg.edge_logits > 0:
            s, t = _require(student, "edge_logits", "student"), _require(teacher, "edge_logits", "teacher")
            terms["edge_logits"] = edge_logits_kl(s, t, cfg.temperature)
        if cfg.relation > 0:
            valid = None if label_mask is None else relation_valid(label_mask)
            labels01 = labels if label_mask is None else torch.where(label_mask.to(torch.bool), labels, 0)
            rel = relation_labels(labels01)
            terms["relation"] = edge_loss(_require(student, "edge_logits", "student"), rel, valid)
        if not terms:
            raise ValueError(f"distillation config {cfg} has every weight at zero")
        total = sum(getattr(cfg, name) * value for name, value in terms.items())
        return {**terms, "total": total}
