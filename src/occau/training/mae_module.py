"""MAE pretraining on unlabelled face crops (mask ratio 0.75 by default, optional norm-pix loss)."""

from __future__ import annotations

import lightning as L
from torch import Tensor

from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.training.config import StageConfig, from_dict
from occau.training.optim import configure_adamw


class MAEModule(L.LightningModule):
    def __init__(self, config: StageConfig) -> None:
        super().__init__()
        self.config = config
        self.model = MaskedAutoencoderViT(from_dict(MAEConfig, config.model, "model."))
        self.mask_ratio = float(config.loss.get("mask_ratio", 0.75))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.model(batch["image"], mask_ratio=self.mask_ratio)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return configure_adamw([self.model], self.config.optim, False, self.trainer.estimated_stepping_batches)
