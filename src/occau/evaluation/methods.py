"""The methods compared under occlusion, as uniform predictors: occluded batch -> AU probabilities per method.

- ``teacher``: the clean-trained teacher on the occluded face (no training for occlusion).
- ``teacher_occaug``: a teacher trained with occlusion augmentation, on the occluded face.
- ``mae_recon_teacher``: the MAE decoder fills the occluded tokens, pasted into the visible image, then the clean
  teacher.
- students: the frozen MAE encoder on the visible tokens only, then each latent-mining head. Students sharing an
  encoder are one group, so the encoder runs once per batch for all of them (as in training).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from occau.models.mae import MaskedAutoencoderViT
from occau.models.megraphau.model import MEGraphAU


class MethodGroup(nn.Module):
    """Predicts ``{method name: probs (B, N)}`` from occluded images (B, 3, S, S) and token masks (B, L)."""

    names: tuple[str, ...]

    def forward(self, images: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError


class TeacherOnOccluded(MethodGroup):
    def __init__(self, name: str, teacher: MEGraphAU) -> None:
        super().__init__()
        self.names, self.teacher = (name,), teacher

    def forward(self, images: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
        return {self.names[0]: self.teacher(images).probs}


class ReconstructThenTeacher(MethodGroup):
    def __init__(self, name: str, mae: MaskedAutoencoderViT, teacher: MEGraphAU) -> None:
        super().__init__()
        self.names, self.mae, self.teacher = (name,), mae, teacher

    def forward(self, images: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
        pasted, _ = self.mae.reconstruct(images, token_mask)
        return {self.names[0]: self.teacher(pasted).probs}


class StudentsOnVisible(MethodGroup):
    def __init__(self, encoder: MaskedAutoencoderViT, students: dict[str, nn.Module]) -> None:
        super().__init__()
        self.names, self.encoder, self.students = tuple(students), encoder, nn.ModuleDict(students)

    def forward(self, images: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
        latents = self.encoder.encode_visible(images, token_mask)
        return {name: student(latents).probs for name, student in self.students.items()}


@dataclass
class MethodSet:
    """All method groups of one fold, plus the patch size that defines their token grid."""

    groups: list[MethodGroup]
    patch_size: int
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = [n for g in self.groups for n in g.names]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"method names must be unique, got {self.names}")

    def to(self, device: torch.device) -> MethodSet:
        for group in self.groups:
            group.to(device).eval()
        return self


def load_methods(specs: dict[str, str]) -> MethodSet:
    """Methods from checkpoints: ``{name: spec}`` where a spec is a teacher checkpoint (teacher on the occluded
    face), a student bundle (student on the visible tokens) or ``MAE+TEACHER`` (reconstruct, then the teacher).

    Students whose bundles hold identical encoder weights share one encoder pass.
    """
    from occau.checkpoints.mae import load_mae
    from occau.checkpoints.megraphau import load_megraphau
    from occau.checkpoints.student import load_student

    groups: list[MethodGroup] = []
    student_groups: list[tuple[MaskedAutoencoderViT, dict[str, nn.Module]]] = []
    patch_sizes = set()
    for name, spec in specs.items():
        if "+" in spec:
            mae_path, teacher_path = spec.split("+", 1)
            mae = load_mae(mae_path)
            patch_sizes.add(mae.config.patch_size)
            groups.append(ReconstructThenTeacher(name, mae, load_megraphau(teacher_path)))
        elif _kind(spec) == "student":
            encoder, student, _ = load_student(spec)
            patch_sizes.add(encoder.config.patch_size)
            for shared, members in student_groups:
                if _same_weights(shared, encoder):
                    members[name] = student
                    break
            else:
                student_groups.append((encoder, {name: student}))
        else:
            teacher = load_megraphau(spec)
            groups.append(TeacherOnOccluded(name, teacher))
    groups += [StudentsOnVisible(encoder, members) for encoder, members in student_groups]
    if len(patch_sizes) > 1:
        raise ValueError(f"methods disagree on the token grid (patch sizes {sorted(patch_sizes)}); evaluate them apart")
    return MethodSet(groups, patch_size=patch_sizes.pop() if patch_sizes else 16)


def _kind(path: str) -> str | None:
    from occau.checkpoints.io import read_meta

    return (read_meta(path) or {}).get("kind")  # foreign files (official ME-GraphAU .pth) are teachers


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
