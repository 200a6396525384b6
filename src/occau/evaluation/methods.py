"""The methods compared under occlusion, as uniform predictors: occluded batch -> AU probabilities per method.

A method is named by a spec ``KIND:CHECKPOINT``; :data:`METHOD_KINDS` is the registry of kinds:

- ``teacher:FILE``: a ME-GraphAU teacher on the occluded face (the clean teacher, or one trained with occlusion
  augmentation; occau safetensors or an official ``.pth``).
- ``recon:MAE+TEACHER``: the MAE decoder fills the occluded tokens, pasted into the visible image, then the teacher.
- ``student:FILE``: a student bundle: the MAE encoder on the visible tokens only, then the latent-mining head.
  Students sharing an encoder are one group, so the encoder runs once per batch for all of them (as in training).

The benchmark's method names (what its presets call their trained models) are the constants below; the claims and
plots read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from occau.models.mae import MaskedAutoencoderViT
from occau.models.megraphau.model import MEGraphAU

TEACHER = "teacher"  # the clean-trained teacher on the occluded face
TEACHER_OCCAUG = "teacher_occaug"  # the teacher fine-tuned under the training occlusion mixture
RECONSTRUCT = "mae_recon_teacher"  # MAE reconstruction, then the clean teacher
STUDENT = "student"  # the method: latent mining with node and edge KD
STUDENT_NO_KD = "student_no_kd"
STUDENT_NODE_KD = "student_node_kd"
STUDENT_EDGE_KD = "student_edge_kd"
STUDENT_RANDOM_INIT = "student_random_init"  # the no-pretraining control: the method's student, random-init encoder
SCRATCH_VIT = "scratch_vit_linear"  # a second one: a random-init ViT, full linear grid readout, no KD


class MethodGroup(nn.Module):
    """Predicts ``{method name: probs (B, N)}`` from occluded images (B, 3, S, S) and token masks (B, L).

    ``uses_mask``: whether the token mask changes the prediction (the unknown-occlusion axis re-runs only these with
    an estimated mask; a method that reads pixels alone gives the same answer whatever it is told)."""

    names: tuple[str, ...]
    uses_mask: bool = True

    def forward(self, images: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError


class TeacherOnOccluded(MethodGroup):
    uses_mask = False

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

    def add(self, name: str, student: nn.Module) -> None:
        """Another student on the same encoder weights."""
        self.students[name] = student
        self.names = (*self.names, name)

    def forward(self, images: Tensor, token_mask: Tensor) -> dict[str, Tensor]:
        latents = self.encoder.encode_visible(images, token_mask)
        return {name: student(latents).probs for name, student in self.students.items()}


@dataclass
class MethodSet:
    """All method groups of one fold, plus the patch size that defines their token grid (None: the standard grid of
    the faces' size)."""

    groups: list[MethodGroup]
    patch_size: int | None
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = [n for g in self.groups for n in g.names]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"method names must be unique, got {self.names}")

    def to(self, device: torch.device) -> MethodSet:
        for group in self.groups:
            group.to(device).eval()
        return self


def _teacher(name: str, path: str) -> tuple[MethodGroup, int | None]:
    from occau.checkpoints.megraphau import load_megraphau

    return TeacherOnOccluded(name, load_megraphau(path)), None


def _reconstruct(name: str, paths: str) -> tuple[MethodGroup, int | None]:
    from occau.checkpoints.mae import load_mae
    from occau.checkpoints.megraphau import load_megraphau

    mae_path, sep, teacher_path = paths.partition("+")
    if not sep:
        raise ValueError(f"method {name}: a recon spec is recon:MAE+TEACHER, got recon:{paths}")
    mae = load_mae(mae_path)
    return ReconstructThenTeacher(name, mae, load_megraphau(teacher_path)), mae.config.patch_size


def _student(name: str, path: str) -> tuple[MethodGroup, int | None]:
    from occau.checkpoints.student import load_student

    encoder, student, _ = load_student(path)
    return StudentsOnVisible(encoder, {name: student}), encoder.config.patch_size


# kind -> loader of (one method's group, the patch size its MAE needs, or None)
METHOD_KINDS: dict[str, Callable[[str, str], tuple[MethodGroup, int | None]]] = {
    "teacher": _teacher,
    "recon": _reconstruct,
    "student": _student,
}


def parse_spec(spec: str) -> tuple[str, str]:
    """``KIND:CHECKPOINT`` -> (kind, checkpoint), with an error naming the known kinds."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in METHOD_KINDS or not path:
        raise ValueError(f"method spec {spec!r} must be KIND:CHECKPOINT with KIND one of {', '.join(METHOD_KINDS)}")
    return kind, path


def load_methods(specs: dict[str, str], patch_size: int | None = None) -> MethodSet:
    """Methods from ``{name: "KIND:CHECKPOINT"}`` (:data:`METHOD_KINDS`) on the token grid ``patch_size``.

    Every MAE among them must have ``patch_size``-px patches (None: they must agree with each other); with no MAE,
    the grid is ``patch_size`` or, when None, the standard grid of the faces' size. Students whose bundles hold
    identical encoder weights share one encoder pass.
    """
    groups: list[MethodGroup] = []
    students: list[StudentsOnVisible] = []
    patch_sizes = {} if patch_size is None else {"data.patch_size": patch_size}
    for name, spec in specs.items():
        kind, path = parse_spec(spec)
        group, needs = METHOD_KINDS[kind](name, path)
        if needs is not None:
            patch_sizes[f"{name} ({path})"] = needs
        if not isinstance(group, StudentsOnVisible):
            groups.append(group)
            continue
        shared = next((s for s in students if _same_weights(s.encoder, group.encoder)), None)
        if shared is None:
            students.append(group)
        else:
            shared.add(name, group.students[name])
    if len(set(patch_sizes.values())) > 1:
        raise ValueError(f"one token grid is needed, but the patch sizes are {patch_sizes}: evaluate these methods "
                         "apart, or set the data's patch size to the MAE's")
    return MethodSet([*groups, *students], patch_size=next(iter(patch_sizes.values()), None))


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
