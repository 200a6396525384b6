"""Faces with something pasted over them and the exact map of what is covered: the occlusion estimator's data.

The ground truth is free: every occluder is painted as a layer whose footprint is known, and every geometric
condition yields its pixel mask (``occlude``). What makes the data worth learning from is what varies:

- **what covers the face**: pasted occluder kinds (``CoverRecipe.kinds``; the estimator must also find kinds it
  never saw, so the held-out and protocol kinds stay out by default), the protocol's geometric conditions with every
  fill, a second occluder now and then, and clean faces (which teach it not to call a brow or a beard covered);
- **where the face is**: a random similarity transform of the face before pasting (real crops are never aligned
  exactly) and a small one of the whole picture after (so an occluder's place is not fixed to the template);
- **how the camera saw it**: brightness, contrast, saturation, hue, gamma, colour cast, grey scale, blur,
  down-and-up scaling, noise and JPEG, applied to the finished picture, so that neither SynthFACS's palette nor the
  painted occluders' clean edges are a shortcut.

Every draw is a pure function of ``(seed, epoch, index)`` (the training sampler's index carries the epoch), so a
resumed run sees the same pictures; validation pictures depend on ``(seed, index)`` only and are not augmented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from occau.data.transforms import to_model_input
from occau.occlusion.conditions import REGIONS, occlude
from occau.occlusion.fills import FILLS
from occau.occlusion.occluder_kinds import TRAINING_KINDS, paste, random_occluder

GEOMETRIC_CONDITIONS: tuple[str, ...] = tuple(c for c in REGIONS if c != "clean")
VALIDATION_STREAM = 7  # validation draws come from (seed, index, this): apart from every (seed, epoch, index)


@dataclass
class CoverRecipe:
    """What the occlusion estimator is shown: which occluders, how often, on which faces, at which size."""

    kinds: tuple[str, ...] = TRAINING_KINDS  # pasted occluder kinds (occluder_kinds.OCCLUDER_KINDS)
    conditions: tuple[str, ...] = GEOMETRIC_CONDITIONS  # protocol regions painted with one of ``fills``
    fills: tuple[str, ...] = FILLS
    clean: float = 0.15  # share of faces left clean
    pasted: float = 0.55  # share covered by pasted occluders; the rest get a geometric condition
    second: float = 0.25  # chance that a pasted face gets a second occluder
    photos: tuple[str, ...] = ("astronaut",)  # real photographs (data.photos) added to the training faces
    photo_repeats: int = 400  # each photo's share of an epoch, in faces (each draw is a new view of it)
    # Real photographs among the validation faces (never trained on), so that selection sees a real face too: a
    # model can fit SynthFACS's look better and real skin worse, which SynthFACS validation faces cannot show.
    val_photos: tuple[str, ...] = ("grace_hopper",)
    val_photo_repeats: int = 100  # draws of each validation photo (each covered differently)
    size: int = 112  # every face is resized to this side before it is covered
    grey: float = 0.1  # chance that a training picture is turned grey scale (old photographs, surveillance video)

    def __post_init__(self) -> None:
        from occau.data.photos import PUBLIC_PHOTOS
        from occau.occlusion.occluder_kinds import OCCLUDER_KINDS

        for what, names, known in (("kinds", self.kinds, OCCLUDER_KINDS), ("conditions", self.conditions, REGIONS),
                                   ("fills", self.fills, FILLS), ("photos", self.photos, PUBLIC_PHOTOS),
                                   ("val_photos", self.val_photos, PUBLIC_PHOTOS)):
            unknown = sorted(set(names) - set(known))
            if unknown:
                raise ValueError(f"{what}: unknown {unknown}; known: {sorted(known)}")
        if set(self.photos) & set(self.val_photos):
            raise ValueError(f"photos {sorted(set(self.photos) & set(self.val_photos))} are both trained on and "
                             "validated on")
        if not all(0 <= p <= 1 for p in (self.clean, self.pasted, self.second, self.grey)):
            raise ValueError("clean, pasted, second and grey are probabilities in [0, 1]")
        if self.pasted > 0 and not self.kinds or self.pasted < 1 and self.clean < 1 and not self.conditions:
            raise ValueError("a recipe that pastes needs kinds, and one that paints regions needs conditions")


def _similarity(size: int, rng: np.random.Generator, degrees: float, scale: float, shift: float) -> np.ndarray:
    """A random (2, 3) rotation + scale + shift about the crop centre."""
    angle = rng.uniform(-degrees, degrees)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, rng.uniform(1 - scale, 1 + scale))
    matrix[:, 2] += rng.uniform(-shift, shift, 2) * size
    return matrix


def _warp(image: np.ndarray, matrix: np.ndarray, border: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    size = image.shape[0]
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=border)


def camera(image: np.ndarray, rng: np.random.Generator, grey: float = 0.1) -> np.ndarray:
    """A random photometric change of a finished (S, S, 3) uint8 RGB picture (see the module docstring); ``grey``:
    the chance that it becomes grey scale."""
    x = image.astype(np.float32) / 255.0
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # H in degrees, S and V in [0, 1]
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 1)
    x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    x = (x - x.mean()) * rng.uniform(0.6, 1.4) + x.mean() * rng.uniform(0.6, 1.4)  # contrast, brightness
    x = x * rng.uniform(0.85, 1.15, 3)  # colour cast
    x = np.clip(x, 0, 1) ** rng.uniform(0.7, 1.5)  # gamma
    is_grey = rng.random() < grey
    if is_grey:
        x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
    size = x.shape[0]
    if rng.random() < 0.3:
        low = max(8, round(size * rng.uniform(0.25, 0.6)))
        x = cv2.resize(cv2.resize(x, (low, low), interpolation=cv2.INTER_AREA), (size, size))
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:
        noise = rng.normal(0, rng.uniform(2, 10) / 255, x.shape).astype(np.float32)
        x = x + (noise.mean(axis=2, keepdims=True) if is_grey else noise)  # a grey camera has grey noise
    out = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(30, 90))
        _, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])  # channel order does not matter
        out = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return out


def cover(face: np.ndarray, recipe: CoverRecipe, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paste what the recipe draws over an (S, S, 3) uint8 face -> (covered copy, (S, S) bool pixel mask)."""
    size = face.shape[0]
    u = rng.random()
    if u < recipe.clean:
        return face.copy(), np.zeros((size, size), dtype=bool)
    if u < recipe.clean + (1 - recipe.clean) * recipe.pasted:
        image, mask = paste(face, random_occluder(size, rng, recipe.kinds))
        if rng.random() < recipe.second:
            image, second = paste(image, random_occluder(size, rng, recipe.kinds))
            mask = mask | second
        return image, mask
    condition = recipe.conditions[int(rng.integers(len(recipe.conditions)))]
    fill = recipe.fills[int(rng.integers(len(recipe.fills)))]
    result = occlude(face, condition, sample_key="cover", seed=int(rng.integers(2**62)), fill=fill)
    return result.image, result.pixel_mask


class CoveredFaces(Dataset):
    """Faces (a FaceSample dataset, plus photographs) covered by a recipe: ``{"image": (3, S, S), "cover": (S, S)}``.

    ``image`` is normalised like every occau model's input; ``cover`` is float32 in {0, 1} (1 = covered pixel).
    """

    def __init__(self, faces: Dataset, recipe: CoverRecipe, *, photos: Sequence[np.ndarray] = (),
                 photo_repeats: int = 1, seed: int = 0, train: bool = False) -> None:
        self.faces, self.recipe, self.seed, self.train = faces, recipe, seed, train
        self.photos = list(photos)
        self.photo_repeats = photo_repeats if self.photos else 0

    def __len__(self) -> int:
        return len(self.faces) + len(self.photos) * self.photo_repeats

    def face(self, index: int) -> np.ndarray:
        """The index-th face at the recipe's size, before anything is pasted."""
        if index < len(self.faces):
            image = self.faces[index]["image"]
        else:
            image = self.photos[(index - len(self.faces)) // self.photo_repeats]
        size = self.recipe.size
        if image.shape[0] != size:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size
                               else cv2.INTER_LINEAR)
        return np.ascontiguousarray(image)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(int(item), len(self))
        face = self.face(index)
        if not self.train:
            rng = np.random.default_rng([self.seed, index, VALIDATION_STREAM])
            image, mask = cover(face, self.recipe, rng)
            return self._tensors(image, mask)
        rng = np.random.default_rng([self.seed, epoch, index])
        size = face.shape[0]
        if rng.random() < 0.5:
            face = face[:, ::-1]
        face = _warp(np.ascontiguousarray(face), _similarity(size, rng, 12, 0.12, 0.06), cv2.BORDER_REFLECT101)
        image, mask = cover(face, self.recipe, rng)
        after = _similarity(size, rng, 5, 0.05, 0.03)
        image = _warp(image, after, cv2.BORDER_REFLECT101)
        mask = _warp(mask.astype(np.uint8), after, cv2.BORDER_REFLECT101, cv2.INTER_NEAREST).astype(bool)
        return self._tensors(camera(image, rng, self.recipe.grey), mask)

    @staticmethod
    def _tensors(image: np.ndarray, mask: np.ndarray) -> dict[str, torch.Tensor]:
        return {"image": to_model_input(np.ascontiguousarray(image)),
                "cover": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))}
