"""How much AU evidence do an encoder's latents carry? A grid-linear probe, and a callback that tracks it.

An MAE's reconstruction loss says nothing about whether its latents keep the small facial deformations that AUs are
made of (a short pretraining can make them *worse* than a random encoder's for AUs), so pretraining is watched with
the quantity the student needs: a linear map from the visible latents, placed in their grid cells, to the AU labels,
fitted on one set of labelled subjects and scored (F1 at 0.5) on others, on clean faces and under 50 % random
patches. The grid placement matters: a position-free probe (mean of the tokens) reads far less from the same latents.

Every number is compared with the same probe on a randomly initialised encoder of the same shape, the control that
says whether pretraining helped at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from occau.data.config import DataConfig
from occau.metrics import f1_scores
from occau.models.mae import MaskedAutoencoderViT
from occau.training.config import ProbeConfig

PROBE_CONDITIONS = ("clean", "patch50")


@torch.no_grad()
def grid_features(encoder: MaskedAutoencoderViT, images: Tensor, token_mask: Tensor, batch_size: int = 256) -> Tensor:
    """Visible latents back in their cells: (B, 3, S, S), (B, L) -> (B, L, D) fp32, zeros at occluded cells.

    The faces go to the encoder's device batch by batch (during pretraining that is the GPU the MAE trains on) and the
    features come back to the faces' device, where the small linear probe is fitted."""
    out, device = [], encoder.cls_token.device
    for i in range(0, len(images), batch_size):
        latents = encoder.encode_visible(images[i:i + batch_size].to(device), token_mask[i:i + batch_size].to(device))
        cells = latents.to_cells(latents.tokens[:, 1:], latents.tokens.new_zeros(1, 1, latents.tokens.shape[-1]))
        out.append(cells.float().to(images.device))
    return torch.cat(out)


@dataclass
class ProbeData:
    """Images and labels of the fitting and scoring faces, under each probe condition."""

    fit: dict[str, dict[str, Tensor]]  # condition -> {"image", "token_mask", "labels", "label_mask"}
    score: dict[str, dict[str, Tensor]]


def load_probe_data(data: DataConfig, probe: ProbeConfig, patch_size: int) -> ProbeData:
    """Fitting faces from ``probe.fit_split`` and scoring faces from ``probe.score_split`` of fold 1."""
    from occau.data.datasets import build_face_dataset
    from occau.occlusion.face_tensors import FaceTensors

    def tensors(split: str, stride: int) -> dict[str, dict[str, Tensor]]:
        faces = build_face_dataset(data, split)
        faces = torch.utils.data.Subset(faces, list(range(0, len(faces), stride)))
        return {c: next(iter(DataLoader(FaceTensors(faces, patch_size=patch_size, condition=c, seed=data.seed),
                                        batch_size=len(faces))))
                for c in PROBE_CONDITIONS}

    return ProbeData(fit=tensors(probe.fit_split, probe.stride), score=tensors(probe.score_split, probe.stride))


def fit_probe(features: Tensor, labels: Tensor, label_mask: Tensor, steps: int, lr: float = 1e-2,
              weight_decay: float = 1e-4, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A linear map (L*D -> N) on standardised grid features with class-balanced logistic loss.

    features (F, L, D); returns (weight (N, L*D), bias (N,), mean (L, D), std (L, D)). Statistics are taken over
    the cells where a latent exists, so occluded cells (zeros) stay at zero after standardising.
    """
    present = (features != 0).any(-1, keepdim=True).to(features.dtype)  # (F, L, 1)
    count = present.sum(0).clamp(min=1)  # (L, 1)
    mean = (features * present).sum(0) / count  # (L, D)
    std = (((features - mean) ** 2 * present).sum(0) / count).sqrt().clamp(min=1e-4)
    x = (((features - mean) / std) * present).flatten(1)  # (F, L*D)
    y, m = labels.float(), label_mask.float()
    positives = (y * m).sum(0)
    pos_weight = ((m.sum(0) - positives) / positives.clamp(min=1)).clamp(max=20)  # (N,)
    g = torch.Generator().manual_seed(seed)
    weight = torch.zeros(y.shape[1], x.shape[1], requires_grad=True)
    bias = torch.zeros(y.shape[1], requires_grad=True)
    optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
    batch = min(256, len(x))
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        logits = x[idx] @ weight.T + bias
        loss = F.binary_cross_entropy_with_logits(logits, y[idx], pos_weight=pos_weight, reduction="none")
        loss = (loss * m[idx]).sum() / m[idx].sum().clamp(min=1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return weight.detach(), bias.detach(), mean, std


def probe_encoder(encoder: MaskedAutoencoderViT, data: ProbeData, steps: int = 300) -> dict[str, float]:
    """Mean F1 (%) of the grid-linear probe on the scoring faces, per probe condition.

    The probe is fitted on the fitting faces under *all* probe conditions at once, as the student is trained under
    a mixture, so one probe answers for clean and occluded faces alike.
    """
    was_training = encoder.training
    encoder.eval()
    feats = {c: grid_features(encoder, b["image"], b["token_mask"]) for c, b in data.fit.items()}
    fit = [data.fit[c] for c in PROBE_CONDITIONS]
    weight, bias, mean, std = fit_probe(torch.cat([feats[c] for c in PROBE_CONDITIONS]),
                                        torch.cat([b["labels"] for b in fit]),
                                        torch.cat([b["label_mask"] for b in fit]), steps)
    scores = {}
    for condition, batch in data.score.items():
        f = grid_features(encoder, batch["image"], batch["token_mask"])
        present = (f != 0).any(-1, keepdim=True).to(f.dtype)
        x = (((f - mean) / std) * present).flatten(1)
        probs = torch.sigmoid(x @ weight.T + bias)
        scores[condition] = round(100 * f1_scores(probs, batch["labels"], batch["label_mask"])[1], 2)
    encoder.train(was_training)
    return scores


class ProbeCallback(L.Callback):
    """Runs the grid-linear probe on the MAE being pretrained every ``every_n_epochs`` epochs (and on a random-init
    encoder of the same shape once), logs ``probe/<condition>`` and keeps the curve in ``OUT/probe.json``."""

    def __init__(self, data: DataConfig, probe: ProbeConfig, patch_size: int, out_dir: str | Path) -> None:
        self.data, self.probe, self.patch_size = data, probe, patch_size
        self.path = Path(out_dir) / "probe.json"
        self._probe_data: ProbeData | None = None

    def curve(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.is_file() else {"random_init": None, "epochs": []}

    def _data(self) -> ProbeData:
        if self._probe_data is None:
            self._probe_data = load_probe_data(self.data, self.probe, self.patch_size)
        return self._probe_data

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.curve()["random_init"] is not None:
            return
        with torch.random.fork_rng():  # the training run's random stream stays as it would be without the probe
            torch.manual_seed(self.probe.seed)
            random_init = MaskedAutoencoderViT(pl_module.model.config, decoder=False)
            self._write({**self.curve(), "random_init": probe_encoder(random_init, self._data(), self.probe.steps)})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not trainer.is_global_zero or epoch % self.probe.every_n_epochs and epoch != trainer.max_epochs:
            return
        with torch.random.fork_rng():
            scores = probe_encoder(pl_module.model, self._data(), self.probe.steps)
        pl_module.log_dict({f"probe/{c}": v for c, v in scores.items()}, rank_zero_only=True)
        curve = self.curve()
        curve["epochs"] = [e for e in curve["epochs"] if e["epoch"] != epoch] + [{"epoch": epoch, **scores}]
        self._write(curve)

    def _write(self, curve: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(curve, indent=1))
