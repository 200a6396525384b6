"""Student training: the frozen MAE encoder sees the visible tokens of an occluded face, the frozen teacher sees the
clean face, and each student learns AU labels plus node/edge distillation from the teacher.

Several students with different loss weights (the paper's method and its KD ablations) train side by side on the
same batches: they share the encoder and teacher passes, which dominate the cost, and their parameters and losses
are disjoint, so summing their losses trains each exactly as if it were alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from occau.losses.distill import DISTILLATION_PRESETS, DistillationConfig, DistillationLoss
from occau.models.mae import MaskedAutoencoderViT
from occau.models.megraphau.model import MEGraphAU
from occau.models.outputs import AUOutput
from occau.models.student import LatentStudent, StudentConfig
from occau.training.au_module import AUTrainingModule
from occau.training.config import StageConfig, from_dict


def student_variants(loss: dict) -> dict[str, DistillationConfig]:
    """``loss.variants`` maps a method name to a preset name or to explicit weights."""
    variants = loss.get("variants") or {"student": "full"}
    out = {}
    for name, spec in variants.items():
        if isinstance(spec, str):
            if spec not in DISTILLATION_PRESETS:
                raise ValueError(f"loss.variants.{name}: unknown preset {spec!r}; known: {sorted(DISTILLATION_PRESETS)}")
            out[name] = DISTILLATION_PRESETS[spec]
        else:
            out[name] = from_dict(DistillationConfig, dict(spec), f"loss.variants.{name}.")
    return out


class StudentModule(AUTrainingModule):
    decay_1d = False

    def __init__(
        self, config: StageConfig, class_weights: list[float], encoder: MaskedAutoencoderViT, teacher: MEGraphAU
    ) -> None:
        super().__init__(config, class_weights)
        self.encoder, self.teacher = encoder, teacher
        for frozen in (encoder, teacher):
            frozen.requires_grad_(False)
        self.variants = student_variants(config.loss)
        student_config = from_dict(StudentConfig, config.model, "model.")
        self.students = nn.ModuleDict({name: LatentStudent(student_config) for name in self.variants})
        self.losses = nn.ModuleDict({n: DistillationLoss(c, weight=self.class_weights) for n, c in self.variants.items()})
        if config.loss.get("init_from_teacher", True):
            for student in self.students.values():
                student.init_from_teacher(teacher.state_dict())

    def train(self, mode: bool = True):
        """Frozen models stay in eval mode (BatchNorm statistics, dropout) whatever Lightning asks."""
        super().train(mode)
        self.encoder.eval()
        self.teacher.eval()
        return self

    def trained_models(self) -> dict[str, nn.Module]:
        return dict(self.students.items())

    def predict_all(self, batch: dict[str, Tensor]) -> dict[str, AUOutput]:
        latents = self.encoder.encode_visible(batch["image"], batch["token_mask"])
        return {name: student(latents) for name, student in self.students.items()}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        with torch.no_grad():
            latents = self.encoder.encode_visible(batch["image"], batch["token_mask"])
            needs_teacher = any(c.needs_teacher for c in self.variants.values())
            target = self.teacher(batch["clean_image"]) if needs_teacher else None
        total = 0.0
        for name, student in self.students.items():
            terms = self.losses[name](student(latents), target, batch["labels"], batch["label_mask"])
            for term, value in terms.items():
                self.log(f"train/{name}/{term}", value, prog_bar=(term == "total" and name == next(iter(self.students))))
            total = total + terms["total"]
        return total
