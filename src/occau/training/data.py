"""From a face dataset (SynthFACS or prepared BP4D/DISFA) to training batches.

Augmentation and training occlusion are pure functions of ``(seed, epoch, index)``: the sampler encodes the epoch
into the index it yields, so a resumed run, a different worker count or another DDP rank sees exactly the same faces.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from occau.data.config import DataConfig
from occau.data.datasets import build_face_dataset
from occau.occlusion import RandomOcclusion
from occau.occlusion.covered_faces import CoveredFaces, CoverRecipe
from occau.occlusion.face_tensors import FaceTensors


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


class FaceDataModule(L.LightningDataModule):
    """Train/val loaders of one fold; ``with_clean`` adds the clean face for distillation."""

    def __init__(self, data: DataConfig, patch_size: int, with_clean: bool = False, train_split: str = "train") -> None:
        super().__init__()
        self.data, self.patch_size, self.with_clean, self.train_split = data, patch_size, with_clean, train_split
        self.batch_size = data.batch_size  # per process; train_stage sets it from the global batch
    def setup(self, stage: str | None = None) -> None:
        occlusion = None
        if self.data.occlusion:
            occlusion = RandomOcclusion(self.data.occlusion, fills=self.data.occlusion_fills,
                                        patch_size=self.patch_size)
        common = dict(patch_size=self.patch_size, occlusion=occlusion, seed=self.data.seed,
                      occlusion_probability=self.data.occlusion_probability, with_clean=self.with_clean)
        self.train_set = FaceTensors(build_face_dataset(self.data, self.train_split), train=True,
                                     hflip=self.data.hflip, color_jitter=self.data.color_jitter, **common)
        self.val_set = None
        if self.train_split != "pretrain" and self.data.fold != "all":  # fold=all: no validation, last epoch kept
            val_faces = build_face_dataset(self.data, "val")
            if self.data.val_faces_fraction < 1.0:
                keep = np.linspace(0, len(val_faces) - 1, max(1, int(len(val_faces) * self.data.val_faces_fraction)))
                val_faces = torch.utils.data.Subset(val_faces, np.unique(keep.astype(int)).tolist())
            self.val_set = FaceTensors(val_faces, train=False, **common)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.train_set), seed=self.data.seed)
        return _loader(self.train_set, self.batch_size, self.data.num_workers, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else _loader(self.val_set, self.data.eval_batch_size, self.data.num_workers)


class CoveredFacesDataModule(L.LightningDataModule):
    """The occlusion estimator's loaders: pretraining faces + photographs to train, the fold's validation faces to
    select, each covered by the recipe (``occau.occlusion.covered_faces``)."""

    def __init__(self, data: DataConfig, recipe: CoverRecipe) -> None:
        super().__init__()
        self.data, self.recipe = data, recipe
        self.batch_size = data.batch_size  # per process; train_stage sets it from the global batch

    def setup(self, stage: str | None = None) -> None:
        from occau.data.photos import aligned_photo

        recipe = self.recipe
        photos = [aligned_photo(name, recipe.size) for name in recipe.photos]
        self.train_set = CoveredFaces(build_face_dataset(self.data, "pretrain"), recipe, photos=photos,
                                      photo_repeats=recipe.photo_repeats, seed=self.data.seed, train=True)
        self.val_set = None
        if self.data.fold != "all":
            val_faces = build_face_dataset(self.data, "val")
            keep = np.linspace(0, len(val_faces) - 1, max(1, int(len(val_faces) * self.data.val_faces_fraction)))
            val_faces = torch.utils.data.Subset(val_faces, np.unique(keep.astype(int)).tolist())
            val_photos = [aligned_photo(name, recipe.size) for name in recipe.val_photos]
            self.val_set = CoveredFaces(val_faces, recipe, photos=val_photos, photo_repeats=recipe.val_photo_repeats,
                                        seed=self.data.seed)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.train_set), seed=self.data.seed)
        return _loader(self.train_set, self.batch_size, self.data.num_workers, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else _loader(self.val_set, self.data.eval_batch_size, self.data.num_workers)


def _loader(dataset: Dataset, batch_size: int, workers: int, **kwargs) -> DataLoader:
    """Workers outlive an epoch (the real-data presets use 8, and respawning them costs seconds every epoch);
    augmentation stays a pure function of (seed, epoch, index) through the sampler, so persistence changes no
    sample. Pinned memory only where a GPU will read the batch."""
    return DataLoader(dataset, batch_size=min(batch_size, len(dataset)), num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(), **kwargs)
