"""From a face dataset (SynthFACS or prepared BP4D/DISFA) to training batches.

Augmentation and training occlusion are pure functions of ``(seed, epoch, index)``: the sampler encodes the epoch
into the index it yields, so a resumed run, a different worker count or another DDP rank sees exactly the same faces.
Evaluation occlusion is a pure function of ``(seed, condition, sample key)`` (PROTOCOL §2), so every method is
tested on the same occluded pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from occau.data.sample import FaceSample
from occau.data.transforms import to_model_input
from occau.occlusion import RandomOcclusion, occlude
from occau.training.config import DataConfig

SPLITS = ("train", "val", "test", "pretrain")


def build_face_dataset(data: DataConfig, split: str) -> Dataset:
    """The FaceSample dataset of one split of one fold."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data.source == "synthfacs":
        from occau.data.synthfacs import SynthFACS, synthfacs_config

        config = synthfacs_config(data.preset, seed=data.seed)
        return SynthFACS(config, data.dataset, split=split, fold=data.fold, cache_dir=data.cache_dir)
    if data.source == "prepared":
        from occau.data.prepared import PreparedDataset, read_info

        if data.root is None:
            raise ValueError("data.root must name a prepared dataset directory (occau prepare ... --out DIR)")
        if split == "pretrain":  # a face collection is all pretraining data; BP4D/DISFA: the fold's training subjects
            split = "all" if read_info(data.root)["dataset"] == "faces" else "train"
        return PreparedDataset(data.root, split=split, fold=data.fold)
    raise ValueError(f"data.source must be 'synthfacs' or 'prepared', got {data.source!r}")


def sample_key(sample: FaceSample) -> str:
    return f"{sample['subject']}/{sample['sequence']}/{sample['frame']}"


class EpochSampler(Sampler[int]):
    """Shuffles ``0..n-1`` by ``(seed, epoch)`` and yields ``epoch * n + i`` so datasets can recover the epoch."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at the start of every epoch
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        return iter((self.epoch * self.n + order).tolist())

    def __len__(self) -> int:
        return self.n


class FaceTensors(Dataset):
    """Model-ready tensors of a FaceSample dataset: the (possibly occluded) image, the clean image and masks.

    ``train``: random flip / jitter / occlusion drawn from ``(seed, epoch, index)``. Otherwise a fixed protocol
    ``condition`` (or, for validation under a training mixture, the mixture drawn from ``(seed, index)``).
    """

    def __init__(
        self,
        faces: Dataset,
        *,
        patch_size: int,
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

    def _occlude(self, image: np.ndarray, sample: FaceSample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        grid = image.shape[0] // self.patch_size
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


class FaceDataModule(L.LightningDataModule):
    """Train/val loaders of one fold; ``with_clean`` adds the clean face for distillation."""

    def __init__(self, data: DataConfig, patch_size: int, with_clean: bool = False, train_split: str = "train") -> None:
        super().__init__()
        self.data, self.patch_size, self.with_clean, self.train_split = data, patch_size, with_clean, train_split
        self.batch_size = data.batch_size  # per process; train_stage sets it from the global batch
    def setup(self, stage: str | None = None) -> None:
        occlusion = None
        if self.data.occlusion:
            occlusion = RandomOcclusion(self.data.occlusion, fills=self.data.occlusion_fills, patch_size=self.patch_size)
        common = dict(patch_size=self.patch_size, occlusion=occlusion, seed=self.data.seed,
                      occlusion_probability=self.data.occlusion_probability, with_clean=self.with_clean)
        self.train_set = FaceTensors(build_face_dataset(self.data, self.train_split), train=True,
                                     hflip=self.data.hflip, color_jitter=self.data.color_jitter, **common)
        self.val_set = None
        if self.train_split != "pretrain" and self.data.fold != "all":  # fold=all: no validation, last epoch kept
            val_faces = build_face_dataset(self.data, "val")
            if self.data.val_fraction < 1.0:
                keep = np.linspace(0, len(val_faces) - 1, max(1, int(len(val_faces) * self.data.val_fraction)))
                val_faces = torch.utils.data.Subset(val_faces, np.unique(keep.astype(int)).tolist())
            self.val_set = FaceTensors(val_faces, train=False, **common)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.train_set), seed=self.data.seed)
        return self._loader(self.train_set, self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else self._loader(self.val_set, self.data.eval_batch_size)

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(dataset, batch_size=min(batch_size, len(dataset)), num_workers=self.data.num_workers,
                          persistent_workers=False, pin_memory=torch.cuda.is_available(), **kwargs)
