"""The MAE stage: pretraining on unlabelled face crops (mask ratio 0.75 by default, optional norm-pix loss)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L
from torch import Tensor, nn

from occau.models.mae import MaskedAutoencoderViT
from occau.training.config import StageConfig
from occau.training.data import FaceDataModule
from occau.training.optim import configure_adamw


class MAEModule(L.LightningModule):
    def __init__(self, config: StageConfig) -> None:
        super().__init__()
        self.config = config
        self.model = MaskedAutoencoderViT(config.model)
        self.mask_ratio = config.loss.mask_ratio

    @classmethod
    def build(cls, config: StageConfig) -> tuple[MAEModule, FaceDataModule]:
        module = cls(config)
        if "mae" in config.init:
            module._continue_from(config.init["mae"])
        return module, FaceDataModule(config.data, config.model.patch_size, train_split="pretrain")

    def _continue_from(self, path: str) -> None:
        """Continued pretraining: every weight in the file is loaded; only decoder keys may start fresh (the official
        ``mae_pretrain`` release has no decoder). Prints what was loaded so a run's log says where it started."""
        from occau.checkpoints.mae import init_mae_weights

        fresh = init_mae_weights(self.model, path)
        loaded = len(self.model.state_dict()) - len(fresh)
        shown = ", ".join(sorted({k.split(".")[0] for k in fresh})) or "none"
        print(f"mae: {loaded} tensors from {path}; {len(fresh)} start fresh ({shown})", flush=True)

    def stage_callbacks(self, out_dir: Path) -> list[L.Callback]:
        """The AU probe that watches pretraining (``probe.every_n_epochs``), if on."""
        if not self.config.probe.every_n_epochs:
            return []
        from occau.training.probe import ProbeCallback

        return [ProbeCallback(self.config.data, self.config.probe, self.model.config.patch_size, out_dir)]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.model(batch["image"], mask_ratio=self.mask_ratio)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return configure_adamw([self.model], self.config.optim, False, self.trainer.estimated_stepping_batches)

    # export ---------------------------------------------------------------------------------------------------
    def trained_models(self) -> dict[str, nn.Module]:
        return {self.config.name or "mae": self.model}

    def best_state(self, name: str) -> tuple[dict[str, Tensor], dict]:
        """The last weights (pretraining has no validation score to select on)."""
        return copy.deepcopy(self.model.state_dict()), {"val_f1": None, "epoch": int(self.current_epoch)}

    def checkpoint_meta(self, name: str, license: str, out_dir: Path) -> dict:
        from occau.checkpoints.mae import mae_meta

        meta = mae_meta(self.model, name, license)
        if (out_dir / "probe.json").is_file():  # the AU probe's curve over pretraining, vs a random-init encoder
            meta["probe"] = json.loads((out_dir / "probe.json").read_text())
        return meta
