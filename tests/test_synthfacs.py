"""SynthFACS: determinism, AUs acting only in their FACS regions, folds, pretraining pool, label statistics, cache."""

from __future__ import annotations

import numpy as np
import pytest

from occau.aus import AU_REGIONS, dataset_aus
from occau.data.synthfacs import (
    GENERATED_AUS,
    FrameNuisance,
    SynthFACS,
    all_subjects,
    render_cache,
    render_face,
    split_subjects,
    synthfacs_config,
)
from occau.data.synthfacs.identity import sample_identity
from occau.reports.datasheet import (
    NEGATIVE_PAIRS,
    STRONG_PAIRS,
    TARGET_BASE_RATES,
    TOLERANCE,
    label_correlation,
)

STILL = FrameNuisance(noise_sd=0.0)  # no jitter, no noise: only the AU changes between two renders
TINY = synthfacs_config("smoke", n_subjects=3, n_pretrain_subjects=1, sequences_per_subject=1, frames_per_sequence=4)


def _with(au: int, level: float) -> np.ndarray:
    x = np.zeros(len(GENERATED_AUS))
    x[GENERATED_AUS.index(au)] = level
    return x


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = SynthFACS(TINY, "synth-bp4d", split="all")
    b = SynthFACS(TINY, "synth-bp4d", split="all")
    c = SynthFACS(synthfacs_config(TINY, seed=1), "synth-bp4d", split="all")
    for i in (0, 3, 7):
        assert np.array_equal(a[i]["image"], b[i]["image"])
        assert not np.array_equal(a[i]["image"], c[i]["image"])
    assert np.array_equal(a.labels, b.labels)
    # frames are independent of the order they are drawn in
    assert np.array_equal(a.image(5), SynthFACS(TINY, "synth-bp4d", split="all").image(5))


@pytest.mark.parametrize("size", [64, 112])
@pytest.mark.parametrize("au", GENERATED_AUS)
def test_each_au_changes_pixels_only_in_its_region_and_grows_with_intensity(au: int, size: int):
    x0, y0, x1, y1 = AU_REGIONS[au]
    margin = 1  # one pixel of anti-aliasing around the box
    inside = np.zeros((size, size), dtype=bool)
    inside[max(0, int(np.floor(y0 * size)) - margin): int(np.ceil(y1 * size)) + margin,
           max(0, int(np.floor(x0 * size)) - margin): int(np.ceil(x1 * size)) + margin] = True
    for k in range(3):
        idn = sample_identity(np.random.default_rng([11, k]))
        neutral = render_face(idn, np.zeros(len(GENERATED_AUS)), size, STILL).astype(np.int16)
        change = [np.abs(render_face(idn, _with(au, level), size, STILL).astype(np.int16) - neutral).max(-1)
                  for level in (1, 3, 5)]
        outside = change[-1][~inside]
        assert outside.max() <= 2, f"AU{au} changed {np.sum(outside > 2)} pixels outside its region (S={size})"
        strength = [float(d[inside].mean()) for d in change]
        assert 0 < strength[0] < strength[1] < strength[2], f"AU{au} not graded: {strength}"
        assert np.sum(change[-1] > 12) >= 3, f"AU{au} at E barely visible at S={size}"


def test_folds_are_subject_exclusive_and_cover_every_labelled_subject():
    cfg = synthfacs_config("quick")
    labelled = {s.id for s in all_subjects(cfg, "synth-bp4d") if s.pool == 0}
    tests = []
    for fold in (1, 2, 3):
        parts = {split: {s.id for s in split_subjects(cfg, "synth-bp4d", split, fold)}
                 for split in ("train", "val", "test")}
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        assert parts["train"] | parts["val"] | parts["test"] == labelled
        assert len(parts["val"]) == round(len(labelled) * 2 / 3 / 6)
        assert {s.part for s in split_subjects(cfg, "synth-bp4d", "test", fold)} == {fold}
        tests.append(parts["test"])
    assert set().union(*tests) == labelled and sum(map(len, tests)) == len(labelled)


def test_pretraining_pool_is_disjoint_from_all_parts():
    cfg = synthfacs_config("smoke")
    pool = split_subjects(cfg, "synth-bp4d", "pretrain")
    labelled = split_subjects(cfg, "synth-bp4d", "all")
    assert len(pool) == cfg.n_pretrain_subjects and not {s.id for s in pool} & {s.id for s in labelled}
    gen = SynthFACS(cfg, "synth-bp4d", split="pretrain")._gen
    looks = {gen.identity(s) for s in labelled}
    assert all(gen.identity(s) not in looks for s in pool)  # no test subject's face is in the pool


@pytest.mark.parametrize("variant", ["synth-bp4d", "synth-disfa"])
def test_default_preset_base_rates_and_correlations(variant: str):
    ds = SynthFACS("quick", variant, split="all")
    rates = 100 * ds.labels.mean(axis=0)
    for au, rate in zip(ds.aus, rates):
        assert abs(rate - TARGET_BASE_RATES[variant][au]) <= TOLERANCE[variant], f"AU{au}: {rate:.1f}%"
    corr = label_correlation(ds.labels)
    idx = {au: i for i, au in enumerate(ds.aus)}
    for a, b in STRONG_PAIRS:
        if a in idx and b in idx:
            assert corr[idx[a], idx[b]] >= 0.3, f"AU{a}-AU{b}: {corr[idx[a], idx[b]]:.2f}"
    for a, b in NEGATIVE_PAIRS:
        if a in idx and b in idx:
            assert corr[idx[a], idx[b]] < 0


def test_sequences_are_smooth_and_labels_are_noisy_only_near_the_threshold():
    ds = SynthFACS("smoke", "synth-bp4d", split="all")
    drawn = ds.continuous_intensity()  # (N, 17)
    T = ds.config.frames_per_sequence
    seqs = drawn.reshape(-1, T, drawn.shape[1])
    lag1 = np.corrcoef(seqs[:, 1:].ravel(), seqs[:, :-1].ravel())[0, 1]
    assert lag1 > 0.9
    columns = [GENERATED_AUS.index(au) for au in ds.aus]
    truth = drawn[:, columns] >= 0.5  # BP4D: positive from A, i.e. intensity >= 0.5 before rounding
    flipped = truth != ds.labels.astype(bool)
    assert 0 < flipped.mean() < 0.1
    assert np.all(np.abs(drawn[:, columns][flipped] - 0.5) < 1.5)


def test_sample_format_and_label_arrays():
    ds = SynthFACS(TINY, "synth-disfa", split="test", fold=2)
    s = ds[len(ds) - 1]
    S = TINY.image_size
    assert s["image"].shape == (S, S, 3) and s["image"].dtype == np.uint8
    assert s["labels"].dtype == np.float32 and s["labels"].shape == (len(dataset_aus("synth-disfa")),)
    assert s["label_mask"].all() and s["label_mask"].dtype == bool
    assert np.array_equal(s["labels"], (s["intensity"] >= 2).astype(np.float32))  # DISFA: positive from B
    assert s["sequence"].startswith(s["subject"]) and s["frame"] == TINY.frames_per_sequence - 1
    labels, mask, intensity = ds.label_arrays()
    assert labels.shape == mask.shape == intensity.shape == (len(ds), 8)
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError, match="unknown SynthFACS preset"):
        synthfacs_config("huge")


def test_render_cache_matches_on_the_fly_frames_and_is_reused(tmp_path):
    path = render_cache(TINY, "synth-bp4d", tmp_path, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # written atomically, no temporary left
    stamp = path.stat().st_mtime_ns
    cached = SynthFACS(TINY, "synth-bp4d", split="val", fold=3, cache_dir=tmp_path, progress=False)
    fresh = SynthFACS(TINY, "synth-bp4d", split="val", fold=3)
    assert len(cached) == len(fresh) > 0
    for i in range(len(cached)):
        assert np.array_equal(cached[i]["image"], fresh[i]["image"])
    assert path.stat().st_mtime_ns == stamp
    pool = SynthFACS(TINY, "synth-bp4d", split="pretrain", cache_dir=tmp_path, progress=False)
    assert np.array_equal(pool[0]["image"], SynthFACS(TINY, "synth-bp4d", split="pretrain")[0]["image"])


def test_shipped_mae_pools_are_disjoint_from_every_benchmark_subject_at_any_seed():
    """The mae-pool preset draws its pretraining (M) and probe (Q) identities from pools 3 and 2; benchmarks draw
    theirs from pools 0 and 1, so no random stream of a benchmark subject, at any seed, is one of theirs."""
    from occau.data.synthfacs.dataset import SynthFACSGenerator

    pool_cfg = synthfacs_config("mae-pool")
    shipped = {tuple(SynthFACSGenerator(pool_cfg, "synth-bp4d")._seed(s))
               for s in all_subjects(pool_cfg, "synth-bp4d")}
    assert {s.pool for s in all_subjects(pool_cfg, "synth-bp4d")} == {2, 3}
    assert len(split_subjects(pool_cfg, "synth-bp4d", "pretrain")) == pool_cfg.n_pretrain_subjects
    for preset in ("smoke", "quick", "full"):
        for seed in (0, 1, 7):
            cfg = synthfacs_config(preset, seed=seed)
            bench = {tuple(SynthFACSGenerator(cfg, "synth-bp4d")._seed(s)) for s in all_subjects(cfg, "synth-bp4d")}
            assert not bench & shipped
    # and the identities really differ: the first probe subject is not the first benchmark subject
    first = SynthFACSGenerator(pool_cfg, "synth-bp4d").identity(all_subjects(pool_cfg, "synth-bp4d")[0])
    bench_cfg = synthfacs_config("quick")
    assert first != SynthFACSGenerator(bench_cfg, "synth-bp4d").identity(all_subjects(bench_cfg, "synth-bp4d")[0])
    with pytest.raises(ValueError, match="pool_base"):
        synthfacs_config("quick", pool_base=1)
