"""The occlusion stage: train the estimate of what covers a face (``models/occlusion_net.py``) on covered faces.

Training faces are the data section's pretraining faces (SynthFACS's unlabelled pool, or a prepared dataset's
training subjects) plus the recipe's public photographs; validation faces are the fold's validation subjects and the
recipe's validation photographs (a real face it never trains on), covered by the same recipe (training kinds only:
the held-out kinds are for the report, never for selection). The
weights kept are those with the best token F1 on validation, scored on the token grid of the recipe's size with
the protocol's at-least-half rule.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from occau.metrics import token_counts, token_scores
from occau.models.occlusion_net import OcclusionNet
from occau.occlusion.tokens import standard_patch_size
from occau.training.best_weights import BestWeights
from occau.training.config import StageConfig
from occau.training.data import CoveredFacesDataModule
from occau.training.optim import configure_adamw

THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))  # 0.2 .. 0.8


class OcclusionModule(BestWeights, L.LightningModule):
    def __init__(self, config: StageConfig) -> None:
        super().__init__()
        self.config = config
        self.model = OcclusionNet(config.model)
        self.patch_size = standard_patch_size(config.loss.size)  # the validation token grid
        self.register_buffer("val_counts", torch.zeros(len(THRESHOLDS), 4, dtype=torch.long), persistent=False)
        self.best: dict[str, dict] = {}

    @classmethod
    def build(cls, config: StageConfig) -> tuple[OcclusionModule, CoveredFacesDataModule]:
        module = cls(config)
        if "weights" in config.init:
            from occau.checkpoints.occlusion import load_occlusion_net

            module.model.load_state_dict(load_occlusion_net(config.init["weights"])[0].state_dict())
        return module, CoveredFacesDataModule(config.data, config.loss)

    def stage_callbacks(self, out_dir: Path) -> list[L.Callback]:
        return []

    @property
    def name(self) -> str:
        return self.config.name or "occlusion"

    def loss(self, logits: Tensor, cover: Tensor) -> Tensor:
        """Per-pixel BCE against the covered share of each output pixel. logits (B, 1, s, s), cover (B, S, S)."""
        target = F.adaptive_avg_pool2d(cover[:, None], logits.shape[-2:])  # (B, 1, s, s) in [0, 1]
        weight = torch.tensor(self.config.loss.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=weight)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(self.model(batch["image"]), batch["cover"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        share = self.model.covered_share(batch["image"], self.patch_size)  # (B, L)
        cover = batch["cover"][:, None]  # (B, 1, S, S)
        truth = F.avg_pool2d(cover, self.patch_size).flatten(1) >= 0.5  # (B, L), the protocol's rule
        for i, threshold in enumerate(THRESHOLDS):
            self.val_counts[i] += token_counts(share >= threshold, truth)

    def on_validation_epoch_end(self) -> None:
        by_threshold = [{k: v if v == v else 0.0 for k, v in token_scores(c).items()} for c in self.val_counts]
        self.val_counts.zero_()
        chosen = max(range(len(THRESHOLDS)), key=lambda i: by_threshold[i]["f1"])
        scores = {**by_threshold[chosen], "threshold": THRESHOLDS[chosen]}
        for key, value in scores.items():
            self.log(f"val/{self.name}/{key}", value, prog_bar=key == "f1")
        self.keep_if_best(self.name, scores["f1"], scores=scores)

    def configure_optimizers(self):
        return configure_adamw([self.model], self.config.optim, True, self.trainer.estimated_stepping_batches)

    # export ---------------------------------------------------------------------------------------------------
    def trained_models(self) -> dict[str, nn.Module]:
        return {self.name: self.model}

    def selection(self, entry: dict | None) -> dict:
        """Token precision, recall, F1 and the threshold chosen with them, on validation."""
        return {"val_token": None if entry is None else entry["scores"]}

    def checkpoint_meta(self, name: str, license: str, out_dir: Path) -> dict:
        """The config with the token threshold chosen on validation with the kept weights."""
        from dataclasses import replace

        from occau.checkpoints.occlusion import occlusion_meta

        config = self.model.config
        if name in self.best:
            config = replace(config, threshold=self.best[name]["scores"]["threshold"])
        return occlusion_meta(config)
