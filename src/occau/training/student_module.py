"""Student training: the MAE encoder sees the visible tokens of an occluded face, the teacher's targets come from the
clean face, and each student learns AU labels plus node/edge distillation from the teacher.

Several students with different loss weights (the paper's method and its KD ablations) train side by side on the
same batches; their parameters and losses are disjoint, so summing their losses trains each exactly as if it were
alone. With a frozen encoder they share its pass; with ``optim.finetune_blocks`` each student owns a copy of the
encoder whose top blocks it fine-tunes (layer-wise lr decay ``optim.layer_decay``), still on the visible tokens
only, and the frozen bottom of the encoder runs once per batch for all of them.

The teacher's targets depend only on the clean face and its flip, so they are computed once per training face and
flip when training starts (``TeacherTargets``), not once per step: a student step then costs no teacher pass.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from occau.data.transforms import to_model_input
from occau.losses.distill import DistillationLoss
from occau.models.mae import MaskedAutoencoderViT, encoder_only
from occau.models.megraphau.model import MEGraphAU
from occau.models.outputs import AUOutput
from occau.models.student import EncoderStudent, LatentStudent
from occau.training.au_module import AUTrainingModule, training_class_weights
from occau.training.config import StageConfig
from occau.training.data import FaceDataModule


class TeacherTargets(nn.Module):
    """The teacher's outputs on every clean training face and its mirror image, computed once: (F, 2, ...) buffers
    indexed by ``(batch["index"], batch["flipped"])``, for the ``AUOutput`` fields given. Stored in float16
    (features are post-ReLU magnitudes of order 1; cosine KD is insensitive to the rounding)."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__()
        # probs (AUOutput's one required field, small) plus only what the KD terms read: edge features are the bulk
        self.fields = ("probs", *(f for f in fields if f != "probs"))

    @torch.no_grad()
    def compute(self, teacher: MEGraphAU, faces, batch_size: int = 128, progress: bool = True) -> None:
        stored: dict[str, list[Tensor]] = {f: [] for f in self.fields}
        bar = tqdm(total=len(faces), desc="teacher targets (clean faces x 2 flips)", unit="face", disable=not progress)
        for start in range(0, len(faces), batch_size):
            images = [faces[i]["image"] for i in range(start, min(start + batch_size, len(faces)))]
            pairs = [to_model_input(np.ascontiguousarray(im[:, ::-1] if flip else im))
                     for im in images for flip in (False, True)]
            out = teacher(torch.stack(pairs).to(self._device(teacher)))
            for f in self.fields:
                value = getattr(out, f)
                stored[f].append(value.reshape(len(images), 2, *value.shape[1:]).half().cpu())
            bar.update(len(images))
        bar.close()
        for f in self.fields:
            self.register_buffer(f, torch.cat(stored[f]), persistent=False)

    def lookup(self, index: Tensor, flipped: Tensor, device: torch.device | str = "cpu") -> AUOutput:
        """The targets of a batch on ``device``, gathered where the table lives (host memory: a BP4D table of edge
        features would not fit beside the model on a GPU) and moved as one batch."""
        where = self.probs.device
        index, flipped = index.to(where), flipped.long().to(where)
        return AUOutput(**{f: getattr(self, f)[index, flipped].to(device).float() for f in self.fields})

    @staticmethod
    def _device(model: nn.Module) -> torch.device:
        return next(model.parameters()).device


class StudentModule(AUTrainingModule):
    decay_1d = False

    def __init__(
        self, config: StageConfig, class_weights: list[float], encoder: MaskedAutoencoderViT, teacher: MEGraphAU
    ) -> None:
        super().__init__(config, class_weights)
        self.teacher = teacher.requires_grad_(False)
        self.variants = config.loss.distillation()
        if config.loss.encoder_init == "random":  # the no-pretraining control: same shape and training, no MAE
            torch.manual_seed(config.seed)
            encoder = MaskedAutoencoderViT(encoder.config, decoder=False)
        depth = encoder.config.depth
        self.tuned = min(max(config.optim.finetune_blocks, 0), depth)  # top blocks each student fine-tunes
        self.all_tuned = config.optim.finetune_blocks >= depth  # the patch embedding too
        # The frozen bottom (all of the encoder when nothing is fine-tuned) runs once per batch for every student.
        self.frozen_encoder = encoder_only(encoder).requires_grad_(False)
        student_config = config.model.for_encoder(encoder.config.embed_dim, encoder.config.num_patches)
        self.models = nn.ModuleDict({
            name: EncoderStudent(self._student_encoder(), LatentStudent(student_config),
                                 layer_decay=config.optim.layer_decay)
            for name in self.variants
        })
        self.losses = nn.ModuleDict({n: DistillationLoss(c, weight=self.class_weights) for n, c in self.variants.items()})
        if config.loss.init_from_teacher:
            teacher_state = teacher.state_dict()
            for model in self.models.values():
                model.student.init_from_teacher(teacher_state)
        for name, model in self.models.items():
            # edge_fc feeds only the edge-logit and relation terms: with both off it gets no gradient, which DDP
            # (find_unused_parameters=False) refuses, so it stays as initialised (the teacher's, by default).
            if self.variants[name].edge_logits == 0 and self.variants[name].relation == 0:
                model.student.edge_fc.requires_grad_(False)
        self.targets = TeacherTargets(tuple(sorted({f for c in self.variants.values() for f in c.teacher_fields})))
        self.needs_teacher = any(c.needs_teacher for c in self.variants.values())

    @classmethod
    def build(cls, config: StageConfig) -> tuple[StudentModule, FaceDataModule]:
        """The students of ``loss.variants`` on the MAE ``init.mae`` with targets from the teacher ``init.teacher``;
        the occlusion grid is the MAE's token grid (``data.patch_size``, if set, must agree)."""
        from occau.checkpoints.mae import load_mae
        from occau.checkpoints.megraphau import load_megraphau

        missing = [role for role in ("mae", "teacher") if role not in config.init]
        if missing:
            raise ValueError(f"the student stage needs init.{' and init.'.join(missing)} (checkpoint files)")
        encoder = load_mae(config.init["mae"])
        patch = encoder.config.patch_size
        if config.data.patch_size and config.data.patch_size != patch:
            raise ValueError(f"data.patch_size is {config.data.patch_size} but the MAE {config.init['mae']} has "
                             f"{patch}-px patches: the occlusion grid must be the MAE's token grid")
        module = cls(config, training_class_weights(config), encoder, load_megraphau(config.init["teacher"]))
        return module, FaceDataModule(config.data, patch, with_clean=True)

    def checkpoint_meta(self, name: str, license: str, out_dir) -> dict:
        """A student bundle's description (state: ``encoder.*`` + ``student.*``) and how its encoder was trained."""
        from occau.checkpoints.student import student_meta

        model = self.models[name]
        meta = student_meta(model.student.config, model.encoder, self.variants[name])
        meta["encoder_training"] = {"finetune_blocks": self.config.optim.finetune_blocks,
                                    "layer_decay": self.config.optim.layer_decay, "init": self.config.loss.encoder_init}
        return meta | {"aus": self.aus}

    def _student_encoder(self) -> MaskedAutoencoderViT:
        """The frozen encoder itself, or a copy whose top ``tuned`` blocks and final norm train (all of it when
        ``all_tuned``)."""
        if self.tuned == 0:
            return self.frozen_encoder
        copy = encoder_only(self.frozen_encoder)
        if not self.all_tuned:
            copy.requires_grad_(False)
            for module in (*copy.blocks[len(copy.blocks) - self.tuned:], copy.norm):
                module.requires_grad_(True)
        return copy

    def train(self, mode: bool = True):
        """Frozen models stay in eval mode (BatchNorm statistics, dropout) whatever Lightning asks."""
        super().train(mode)
        self.teacher.eval()
        self.frozen_encoder.eval()
        return self

    def on_fit_start(self) -> None:
        if self.needs_teacher and not hasattr(self.targets, "probs"):
            faces = self.trainer.datamodule.train_set.faces
            self.targets.compute(self.teacher, faces, progress=self.config.trainer.progress_bar)

    def trained_models(self) -> dict[str, nn.Module]:
        return dict(self.models.items())

    def _outputs(self, batch: dict[str, Tensor]) -> dict[str, AUOutput]:
        images, token_mask = batch["image"], batch["token_mask"]
        if self.all_tuned:
            return {name: model(images, token_mask) for name, model in self.models.items()}
        frozen, depth = self.frozen_encoder, len(self.frozen_encoder.blocks)
        with torch.no_grad():
            x, padding_mask, ids_keep = frozen.embed_visible(images, token_mask)
            x = frozen.forward_blocks(x, padding_mask, 0, depth - self.tuned)
            shared = None if self.tuned else frozen.finish_visible(x, padding_mask, ids_keep, token_mask)
        outputs = {}
        for name, model in self.models.items():
            latents = shared
            if latents is None:
                top = model.encoder.forward_blocks(x, padding_mask, depth - self.tuned, depth)
                latents = model.encoder.finish_visible(top, padding_mask, ids_keep, token_mask)
            outputs[name] = model.student(latents)
        return outputs

    def predict_all(self, batch: dict[str, Tensor]) -> dict[str, AUOutput]:
        return self._outputs(batch)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        target = None
        if self.needs_teacher:
            target = self.targets.lookup(batch["index"], batch["flipped"], self.device)
        total = 0.0
        first = next(iter(self.models))
        for name, out in self._outputs(batch).items():
            terms = self.losses[name](out, target, batch["labels"], batch["label_mask"])
            for term, value in terms.items():
                self.log(f"train/{name}/{term}", value, prog_bar=(term == "total" and name == first))
            total = total + terms["total"]
        return total
