"""What the teacher and student Lightning modules share: validation AU F1 per trained model, which decides the
weights each keeps (``BestWeights``), and the optimiser."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from occau.aus import dataset_aus
from occau.data.datasets import build_face_dataset
from occau.data.statistics import class_weights
from occau.metrics import AUF1
from occau.models.outputs import AUOutput
from occau.training.best_weights import BestWeights
from occau.training.config import StageConfig
from occau.training.optim import configure_adamw

def training_class_weights(config: StageConfig) -> list[float]:
    """WA weights from the training split's labels (unknown labels excluded), as upstream computes them per fold."""
    faces = build_face_dataset(config.data, "train")
    labels, mask = faces.label_arrays()[:2]
    return class_weights(labels, mask).tolist()


class AUTrainingModule(BestWeights, L.LightningModule):
    """Subclasses define ``trained_models()`` (name -> module) and ``predict_all(batch)`` (name -> AUOutput)."""

    decay_1d = True  # ME-GraphAU decays every parameter; MAE-style models override

    def __init__(self, config: StageConfig, class_weights: list[float]) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32), persistent=False)
        self.best: dict[str, dict] = {}  # name -> {"f1": float, "epoch": int, "state": state_dict}
        self.val_metrics = nn.ModuleDict()
        self.aus = list(dataset_aus(config.data.dataset))  # what every exported model's outputs are, in order

    def stage_callbacks(self, out_dir) -> list[L.Callback]:
        """Callbacks the stage adds to its trainer (none: validation F1 and best weights are built in)."""
        return []

    def predict_all(self, batch: dict[str, Tensor]) -> dict[str, AUOutput]:
        raise NotImplementedError

    # validation ---------------------------------------------------------------------------------------------
    def _metric(self, name: str) -> AUF1:
        if name not in self.val_metrics:
            self.val_metrics[name] = AUF1(len(self.class_weights)).to(self.device)
        return self.val_metrics[name]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        for name, out in self.predict_all(batch).items():
            self._metric(name).update(out.probs, batch["labels"], batch["label_mask"])

    def on_validation_epoch_end(self) -> None:
        for name, metric in self.val_metrics.items():
            f1 = float(metric.compute()["f1_mean"])
            metric.reset()
            self.log(f"val/{name}/f1", f1, prog_bar=True, sync_dist=False)
            self.keep_if_best(name, f1)

    # optimisation -------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        return configure_adamw(self.trained_models().values(), self.config.optim, self.decay_1d,
                               self.trainer.estimated_stepping_batches)
