"""ME-GraphAU teacher training: stage 1 (ANFL, WA loss) and stage 2 (MEFL, WA + lambda * edge loss).

The occlusion-augmented teacher baseline is the same module fed occluded faces (``data.occlusion``).
"""

from __future__ import annotations

from torch import Tensor, nn

from occau.losses.edge import edge_loss, relation_labels, relation_valid
from occau.losses.wa import WeightedAsymmetricLoss
from occau.models.megraphau.model import MEGraphAU, MEGraphAUConfig
from occau.models.outputs import AUOutput
from occau.training.au_module import AUTrainingModule
from occau.training.config import StageConfig, from_dict

DEFAULT_EDGE_WEIGHT = 0.05  # README lambda for BP4D (0.01 for DISFA)


class TeacherModule(AUTrainingModule):
    def __init__(self, config: StageConfig, class_weights: list[float]) -> None:
        super().__init__(config, class_weights)
        self.model = MEGraphAU(from_dict(MEGraphAUConfig, config.model, "model."))
        self.wa = WeightedAsymmetricLoss(weight=self.class_weights)
        self.edge_weight = float(config.loss.get("edge_weight", DEFAULT_EDGE_WEIGHT))

    @property
    def name(self) -> str:
        return self.config.name or "teacher"

    def trained_models(self) -> dict[str, nn.Module]:
        return {self.name: self.model}

    def predict_all(self, batch: dict[str, Tensor]) -> dict[str, AUOutput]:
        return {self.name: self.model(batch["image"])}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.model(batch["image"])
        labels, mask = batch["labels"], batch["label_mask"]
        loss = wa = self.wa(out.probs, labels, mask)
        self.log("train/wa", wa)
        if out.edge_logits is not None and self.edge_weight > 0:
            edge = edge_loss(out.edge_logits, relation_labels(labels * mask), relation_valid(mask))
            loss = wa + self.edge_weight * edge
            self.log("train/edge", edge)
        self.log("train/loss", loss, prog_bar=True)
        return loss
