"""ME-GraphAU teacher training: stage 1 (ANFL, WA loss) and stage 2 (MEFL, WA + lambda * edge loss).

The occlusion-augmented teacher baseline is the same module fed occluded faces (``data.occlusion``).
"""

from __future__ import annotations

from torch import Tensor, nn

from occau.data.relations import relation_labels, relation_valid
from occau.losses.edge import edge_loss
from occau.losses.wa import WeightedAsymmetricLoss
from occau.models.megraphau.model import MEGraphAU
from occau.models.outputs import AUOutput
from occau.occlusion.tokens import standard_patch_size
from occau.training.au_module import AUTrainingModule, training_class_weights
from occau.training.config import StageConfig
from occau.training.data import FaceDataModule


class TeacherModule(AUTrainingModule):
    def __init__(self, config: StageConfig, class_weights: list[float]) -> None:
        super().__init__(config, class_weights)
        self.model = MEGraphAU(config.model)
        self.wa = WeightedAsymmetricLoss(weight=self.class_weights)
        self.edge_weight = config.loss.edge_weight

    @classmethod
    def build(cls, config: StageConfig) -> tuple[TeacherModule, FaceDataModule]:
        """Stage 2 warm-starts from stage 1 exactly as upstream (``init.stage1``); ``init.backbone`` gives ImageNet
        initialisation; ``init.weights`` starts from a whole trained teacher (the occlusion-augmented baseline).

        Teachers see pixels, so the token grid only shapes patch occlusion: ``data.patch_size`` (the MAE's patch in a
        benchmark) keeps an occlusion-augmented teacher on the test-time grid."""
        from occau.checkpoints.io import load_checkpoint, load_exact
        from occau.checkpoints.megraphau import (init_stage2_from_stage1, load_backbone_weights, read_state_dict,
                                                 to_occau_names)

        module = cls(config, training_class_weights(config))
        if "backbone" in config.init:
            load_backbone_weights(module.model, config.init["backbone"])
        if "stage1" in config.init:
            init_stage2_from_stage1(module.model, load_checkpoint(config.init["stage1"])[0])
        if "weights" in config.init:
            path = config.init["weights"]
            state, _ = read_state_dict(path)
            load_exact(module.model, to_occau_names(state, module.model, path), path)
        patch_size = standard_patch_size(config.model.img_size, config.data.patch_size)
        return module, FaceDataModule(config.data, patch_size)

    def checkpoint_meta(self, name: str, license: str, out_dir) -> dict:
        from occau.checkpoints.megraphau import megraphau_meta

        return megraphau_meta(self.model.config) | {"aus": self.aus}

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
