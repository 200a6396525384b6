"""SynthFACS as a dataset: presets, subjects and folds, the frame generator, the render cache, the torch Dataset.

Every frame is a pure function of ``(seed, variant, subject, sequence, frame)``: each gets its own
``np.random.default_rng`` seeded from those numbers, so frames can be drawn in any order, in any process, and the
render cache is only a speed-up (a uint8 ``.npy`` per variant and preset, memory-mapped when training).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from occau.aus import dataset_aus
from occau.data.sample import FaceSample
from occau.data.synthfacs.expressions import (
    SequenceTrack,
    sample_traits,
    sequence_track,
    task_index,
    variant_profile,
)
from occau.data.synthfacs.identity import Identity, sample_identity
from occau.data.synthfacs.render import AU_INDEX, FrameNuisance, render_face

GENERATOR_VERSION = "1"  # bump whenever a change alters pixels or labels, so stale caches are not reused
VARIANTS: dict[str, int] = {"synth-bp4d": 1, "synth-disfa": 2}  # the code enters every seed
SPLITS = ("train", "val", "test", "pretrain", "all")
_LABELLED, _PRETRAIN = 0, 1  # pool offsets within a preset's ``pool_base``
POOL_PREFIXES = "SPQM"  # subject-id letter of pools 0 (benchmark labelled), 1 (benchmark pretraining), 2, 3


@dataclass(frozen=True)
class SynthFACSConfig:
    """Size of one SynthFACS build: labelled subjects in 3 parts plus a separate pool of pretraining subjects."""

    name: str
    image_size: int  # crop side S
    n_subjects: int  # labelled subjects, split into 3 subject-exclusive parts
    n_pretrain_subjects: int  # unlabelled-use pool for MAE pretraining, disjoint from all parts
    sequences_per_subject: int
    frames_per_sequence: int
    seed: int = 0
    val_subject_fraction: float = 1 / 6  # of each fold's training subjects, held out for model selection
    # Labelled subjects come from pool ``pool_base``, pretraining subjects from ``pool_base + 1``. Every random
    # stream is seeded with the pool, so a preset with pool_base 2 (the shipped MAE's pretraining and probe
    # subjects) draws identities that no benchmark, at any seed, can draw.
    pool_base: int = 0

    def __post_init__(self) -> None:
        if self.pool_base not in (0, 2):
            raise ValueError(f"SynthFACSConfig.pool_base must be 0 (benchmark) or 2 (shipped MAE), got {self.pool_base}")

    @property
    def n_frames(self) -> int:
        return (self.n_subjects + self.n_pretrain_subjects) * self.sequences_per_subject * self.frames_per_sequence


PRESETS: dict[str, SynthFACSConfig] = {
    "smoke": SynthFACSConfig("smoke", image_size=64, n_subjects=12, n_pretrain_subjects=6, sequences_per_subject=2,
                             frames_per_sequence=24),
    "quick": SynthFACSConfig("quick", image_size=64, n_subjects=60, n_pretrain_subjects=30, sequences_per_subject=4,
                             frames_per_sequence=40),
    # 64 px like quick: the benchmark's 3-hour CPU budget goes into subjects and epochs rather than pixels
    # (docs/benchmark.md); every AU is visible at 64 px (see the datasheet gallery).
    "full": SynthFACSConfig("full", image_size=64, n_subjects=96, n_pretrain_subjects=60, sequences_per_subject=4,
                            frames_per_sequence=40),
    # The shipped MAE's data (docs/pretraining.md): thousands of identities, one 40-frame sequence each (tasks
    # cycle over identities, so the pool has the labelled parts' expression variety), plus 60 labelled *probe*
    # subjects that score the latents during pretraining. Both pools are disjoint from every benchmark subject.
    "mae-pool": SynthFACSConfig("mae-pool", image_size=64, n_subjects=60, n_pretrain_subjects=2400,
                                sequences_per_subject=1, frames_per_sequence=40, pool_base=2),
}


def synthfacs_config(preset: str | SynthFACSConfig, **overrides) -> SynthFACSConfig:
    """A preset by name (or a config as is), with fields overridden, e.g. ``synthfacs_config("quick", seed=1)``."""
    if isinstance(preset, SynthFACSConfig):
        return replace(preset, **overrides) if overrides else preset
    try:
        return replace(PRESETS[preset], **overrides)
    except KeyError:
        raise ValueError(f"unknown SynthFACS preset {preset!r}; known: {sorted(PRESETS)}") from None


def _variant_code(variant: str) -> int:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown SynthFACS variant {variant!r}; known: {sorted(VARIANTS)}") from None


# ---------------------------------------------------------------- subjects and folds


@dataclass(frozen=True)
class Subject:
    id: str  # "S001".. labelled, "P001".. pretraining pool ("Q"/"M" in the shipped MAE's pools)
    pool: int  # config.pool_base + 0 labelled, + 1 pretraining
    index: int  # within its pool
    part: int  # 1..3 for labelled subjects, 0 for the pretraining pool


def all_subjects(config: SynthFACSConfig, variant: str) -> list[Subject]:
    """Labelled subjects (with their part) then the pretraining pool, in cache order."""
    code = _variant_code(variant)
    order = np.random.default_rng([config.seed, code, 101]).permutation(config.n_subjects)
    part = np.empty(config.n_subjects, dtype=int)
    part[order] = np.arange(config.n_subjects) % 3 + 1
    pools = config.pool_base + _LABELLED, config.pool_base + _PRETRAIN
    labelled = [Subject(f"{POOL_PREFIXES[pools[0]]}{i + 1:03d}", pools[0], i, int(part[i]))
                for i in range(config.n_subjects)]
    pretrain = [Subject(f"{POOL_PREFIXES[pools[1]]}{i + 1:04d}" if config.n_pretrain_subjects > 999
                        else f"{POOL_PREFIXES[pools[1]]}{i + 1:03d}", pools[1], i, 0)
                for i in range(config.n_pretrain_subjects)]
    return labelled + pretrain


def split_subjects(config: SynthFACSConfig, variant: str, split: str, fold: int = 1) -> list[Subject]:
    """Subjects of a split. Fold k tests part k, trains on the others minus a validation subset (PROTOCOL §4)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if fold not in (1, 2, 3):
        raise ValueError(f"fold must be 1, 2 or 3 (the test part), got {fold}")
    subjects = all_subjects(config, variant)
    if split == "pretrain":
        return [s for s in subjects if s.part == 0]
    labelled = [s for s in subjects if s.part != 0]
    if split == "all":
        return labelled
    if split == "test":
        return [s for s in labelled if s.part == fold]
    training = [s for s in labelled if s.part != fold]
    n_val = max(1, round(len(training) * config.val_subject_fraction)) if len(training) > 1 else 0
    rng = np.random.default_rng([config.seed, _variant_code(variant), 102, fold])
    val_ids = {training[i].id for i in rng.permutation(len(training))[:n_val]}
    return [s for s in training if (s.id in val_ids) == (split == "val")]


# ---------------------------------------------------------------- the generator


class SynthFACSGenerator:
    """Identities, sequence tracks and frames of one (config, variant), each from its own seed."""

    def __init__(self, config: SynthFACSConfig, variant: str):
        self.config, self.variant = config, variant
        self.code = _variant_code(variant)
        self.profile = variant_profile(variant)

    def _seed(self, subject: Subject, *more: int) -> list[int]:
        return [self.config.seed, self.code, subject.pool, subject.index, *more]

    def identity(self, subject: Subject) -> Identity:
        return sample_identity(np.random.default_rng(self._seed(subject, 0)))

    def tracks(self, subject: Subject) -> list[SequenceTrack]:
        traits = sample_traits(self.profile, np.random.default_rng(self._seed(subject, 1)))
        n_seq = self.config.sequences_per_subject
        return [sequence_track(self.profile, traits, task_index(self.profile, subject.index, q, n_seq),
                               self.config.frames_per_sequence, np.random.default_rng(self._seed(subject, 2, q)))
                for q in range(n_seq)]

    def nuisance(self, subject: Subject, track: SequenceTrack, sequence: int, frame: int) -> FrameNuisance:
        dx, dy, angle, scale = (float(v) for v in track.pose[frame])
        noise_seed = int(np.random.SeedSequence(self._seed(subject, 3, sequence, frame)).generate_state(1)[0])
        return FrameNuisance(dx=dx, dy=dy, angle=angle, scale=1.0 + scale, gaze_x=float(track.gaze[frame, 0]),
                             gaze_y=float(track.gaze[frame, 1]), blink=float(track.blink[frame]),
                             noise_seed=noise_seed)

    def render_subject(self, subject: Subject, out: np.ndarray | None = None) -> np.ndarray:
        """All frames of one subject, (Q * T, S, S, 3) uint8, sequence-major."""
        cfg = self.config
        idn = self.identity(subject)
        if out is None:
            out = np.empty((cfg.sequences_per_subject * cfg.frames_per_sequence, cfg.image_size, cfg.image_size, 3),
                           np.uint8)
        for q, track in enumerate(self.tracks(subject)):
            for t in range(cfg.frames_per_sequence):
                out[q * cfg.frames_per_sequence + t] = render_face(
                    idn, track.intensity[t], cfg.image_size, self.nuisance(subject, track, q, t))
        return out


# ---------------------------------------------------------------- the render cache


def cache_path(config: SynthFACSConfig, variant: str, cache_dir: str | os.PathLike) -> Path:
    """One file per (variant, preset, seed); the hash covers every config field and the generator version."""
    key = json.dumps({"config": asdict(config), "variant": variant, "version": GENERATOR_VERSION}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return Path(cache_dir).expanduser() / f"{variant}-{config.name}-seed{config.seed}-S{config.image_size}-{digest}.npy"


def _render_chunk(config: SynthFACSConfig, variant: str, tmp: str, subjects: list[Subject], first: int) -> int:
    """Worker: render ``subjects`` into rows ``first..`` of the cache being written."""
    torch.set_num_threads(1)
    gen = SynthFACSGenerator(config, variant)
    images = np.load(tmp, mmap_mode="r+")
    per = config.sequences_per_subject * config.frames_per_sequence
    for k, subject in enumerate(subjects):
        gen.render_subject(subject, images[first + k * per: first + (k + 1) * per])
    images.flush()
    return len(subjects)


def render_cache(config: SynthFACSConfig, variant: str, cache_dir: str | os.PathLike, workers: int = 2,
                 progress: bool = True) -> Path:
    """Render every frame (labelled, then pretraining subjects) once; reuse the file when it exists."""
    path = cache_path(config, variant, cache_dir)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    S = config.image_size
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(config.n_frames, S, S, 3)).flush()
    subjects = all_subjects(config, variant)
    per = config.sequences_per_subject * config.frames_per_sequence
    chunks = [(subjects[i: i + 4], i * per) for i in range(0, len(subjects), 4)]
    from tqdm import tqdm

    bar = tqdm(total=len(subjects), desc=f"rendering {path.name}", unit="subject", disable=not progress)
    try:
        if workers <= 1:
            for chunk, first in chunks:
                bar.update(_render_chunk(config, variant, str(tmp), chunk, first))
        else:
            with ProcessPoolExecutor(workers) as pool:
                jobs = [pool.submit(_render_chunk, config, variant, str(tmp), c, f) for c, f in chunks]
                for job in jobs:
                    bar.update(job.result())
        os.replace(tmp, path)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- the torch dataset


class SynthFACS(torch.utils.data.Dataset):
    """One split of one fold of a SynthFACS variant, yielding ``FaceSample`` dicts.

    Labels of the whole split are computed at construction (fast, no rendering): ``labels``, ``label_mask`` and
    ``intensity`` are (N, A) arrays in the variant's AU order. Images come from the render cache when ``cache_dir``
    is given (rendered first if missing) or are drawn on the fly.
    """

    def __init__(self, config: SynthFACSConfig | str, variant: str, split: str = "train", fold: int = 1,
                 cache_dir: str | os.PathLike | None = None, workers: int = 2, progress: bool = True):
        self.config = synthfacs_config(config)
        self.variant, self.split, self.fold = variant, split, fold
        self.aus = dataset_aus(variant)
        self.subjects = split_subjects(self.config, variant, split, fold)
        self._gen = SynthFACSGenerator(self.config, variant)
        cfg = self.config
        per = cfg.sequences_per_subject * cfg.frames_per_sequence
        positions = {s.id: i for i, s in enumerate(all_subjects(cfg, variant))}
        columns = [AU_INDEX[au] for au in self.aus]
        tracks, rows = [], []
        for s in self.subjects:
            tracks.append(self._gen.tracks(s))
            rows.append(positions[s.id] * per + np.arange(per))
        self._tracks = tracks
        self.rows = np.concatenate(rows) if rows else np.zeros(0, dtype=int)  # row of each sample in the cache
        coded = np.concatenate([t.coded for ts in tracks for t in ts]) if tracks else np.zeros((0, 17), np.int8)
        self.intensity = coded[:, columns].astype(np.float32)  # (N, A)
        self.labels = (self.intensity >= self.threshold).astype(np.float32)  # (N, A)
        self.label_mask = np.ones_like(self.labels, dtype=bool)
        self._cache = render_cache(cfg, variant, cache_dir, workers, progress) if cache_dir is not None else None
        self._images: np.ndarray | None = None
        self._identities: dict[int, Identity] = {}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def threshold(self) -> int:
        """A label is positive when the coded intensity is at least this (1 = A for BP4D, 2 = B for DISFA)."""
        return self._gen.profile.threshold

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = None  # DataLoader workers reopen the memmap instead of pickling it
        return state

    @cached_property
    def _frames_per_subject(self) -> int:
        return self.config.sequences_per_subject * self.config.frames_per_sequence

    def locate(self, i: int) -> tuple[int, int, int]:
        """(subject position in this split, sequence, frame) of sample ``i``."""
        s, r = divmod(i, self._frames_per_subject)
        q, t = divmod(r, self.config.frames_per_sequence)
        return s, q, t

    def image(self, i: int) -> np.ndarray:
        if self._cache is not None:
            if self._images is None:
                self._images = np.load(self._cache, mmap_mode="r")
            return np.array(self._images[self.rows[i]])
        s, q, t = self.locate(i)
        subject, track = self.subjects[s], self._tracks[s][q]
        if s not in self._identities:
            self._identities[s] = self._gen.identity(subject)
        return render_face(self._identities[s], track.intensity[t], self.config.image_size,
                           self._gen.nuisance(subject, track, q, t))

    def __getitem__(self, i: int) -> FaceSample:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for SynthFACS {self.split} of size {len(self)}")
        s, q, t = self.locate(i)
        subject = self.subjects[s].id
        return FaceSample(image=self.image(i), labels=self.labels[i], label_mask=self.label_mask[i],
                          intensity=self.intensity[i], subject=subject, sequence=f"{subject}-T{q + 1}", frame=t)

    def label_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, label_mask, intensity), each (N, A), without rendering a single image (e.g. for class weights)."""
        return self.labels, self.label_mask, self.intensity

    def continuous_intensity(self) -> np.ndarray:
        """(N, 17) intensities the renderer drew, in ``GENERATED_AUS`` order (for the datasheet)."""
        return np.concatenate([t.intensity for ts in self._tracks for t in ts])
