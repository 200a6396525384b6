"""The face dataset of one split of one fold, from a DataConfig: SynthFACS (generated) or prepared BP4D/DISFA."""

from __future__ import annotations

from torch.utils.data import Dataset

from occau.data.config import DataConfig

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
