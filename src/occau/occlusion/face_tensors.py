"""Model-ready tensors of a face dataset under occlusion: what training batches and the evaluation protocol feed
the models.

Training augmentation and occlusion are pure functions of ``(seed, epoch, index)``; evaluation occlusion is a pure
function of ``(seed, condition, sample key)`` (PROTOCOL §2), so every method is tested on the same occluded pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from occau.data.sample import FaceSample
from occau.data.transforms import to_model_input
from occau.occlusion.augment import RandomOcclusion
from occau.occlusion.conditions import occlude
from occau.occlusion.tokens import standard_patch_size


def sample_key(sample: FaceSample) -> str:
    return f"{sample['subject']}/{sample['sequence']}/{sample['frame']}"


class FaceTensors(Dataset):
    """Model-ready tensors of a FaceSample dataset: the (possibly occluded) image, the clean image and masks.

    ``train``: random flip / jitter / occlusion drawn from ``(seed, epoch, index)``. Otherwise a fixed protocol
    ``condition`` (or, for validation under a training mixture, the mixture drawn from ``(seed, index)``).
    """

    def __init__(
        self,
        faces: Dataset,
        *,
        patch_size: int | None = None,
        train: bool = False,
        hflip: bool = False,
        color_jitter: float = 0.0,
        occlusion: RandomOcclusion | None = None,
        occlusion_probability: float = 1.0,
        condition: str = "clean",
        fill: str = "black",
        seed: int = 0,
        with_clean: bool = False,
    ) -> None:
        self.faces, self.patch_size, self.train = faces, patch_size, train
        self.hflip, self.color_jitter = hflip, color_jitter
        self.occlusion, self.occlusion_probability = occlusion, occlusion_probability
        self.condition, self.fill, self.seed, self.with_clean = condition, fill, seed, with_clean

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(int(item), len(self.faces))
        sample: FaceSample = self.faces[index]
        image = sample["image"]
        rng = np.random.default_rng([self.seed, epoch, index])
        flipped = False
        if self.train:
            image, flipped = self._augment(image, rng)
        occluded, token_mask = self._occlude(image, sample, rng)
        out = {
            "image": to_model_input(np.ascontiguousarray(occluded)),
            "token_mask": torch.from_numpy(token_mask),
            "labels": torch.as_tensor(sample["labels"], dtype=torch.float32),
            "label_mask": torch.as_tensor(sample["label_mask"], dtype=torch.bool),
            "index": torch.tensor(index),
            "flipped": torch.tensor(flipped),  # with "index", the key of cached teacher targets
        }
        if self.with_clean:
            out["clean_image"] = to_model_input(np.ascontiguousarray(image))
        return out

    def _augment(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        flipped = bool(self.hflip and rng.random() < 0.5)
        if flipped:
            image = image[:, ::-1]
        if self.color_jitter > 0:  # brightness and contrast, as upstream's ColorJitter(0.4, 0.4) at 0.4
            brightness, contrast = 1 + rng.uniform(-self.color_jitter, self.color_jitter, 2)
            pixels = image.astype(np.float32)
            pixels = (pixels - pixels.mean()) * contrast + pixels.mean()
            image = np.clip(pixels * brightness, 0, 255).astype(np.uint8)
        return image, flipped

    def _occlude(
        self, image: np.ndarray, sample: FaceSample, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        grid = image.shape[0] // standard_patch_size(image.shape[0], self.patch_size)
        if self.occlusion is not None:
            if rng.random() < self.occlusion_probability:
                result = self.occlusion(image, rng)
                return result.image, result.token_mask
            return image, np.zeros(grid * grid, dtype=bool)
        if self.condition == "clean":
            return image, np.zeros(grid * grid, dtype=bool)
        result = occlude(image, self.condition, sample_key=sample_key(sample), seed=self.seed,
                         patch_size=self.patch_size, fill=self.fill)
        return result.image, result.token_mask
