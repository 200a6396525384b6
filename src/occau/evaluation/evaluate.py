"""Evaluate methods on the test part of each fold under every occlusion condition (PROTOCOL §2-§3).

Every method sees the same occluded pixels (occlusion is seeded by (seed, condition, sample key)); F1 is counted
over all test frames of the fold, per AU, at threshold 0.5. Inference time per face is measured separately, one
method at a time, so shared work (the student group's encoder) is charged to each method in full.

:func:`evaluate_fold` and :func:`results_over_folds` are the one evaluation path of both ``occau evaluate`` and
``occau bench``: methods by spec, the fold's test faces, the references on the same faces, the timings, and the
``results.json`` layout (occau.reports.results).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from occau.aus import dataset_aus
from occau.data.config import DataConfig
from occau.data.datasets import build_face_dataset
from occau.evaluation.environment import machine_info, software_info
from occau.evaluation.methods import MethodGroup, MethodSet, StudentsOnVisible, load_methods
from occau.evaluation.occlusion_estimates import ESTIMATES, TokenEstimate, open_estimate
from occau.evaluation.references import fold_references
from occau.metrics import AUF1, token_counts, token_scores
from occau.occlusion.face_tensors import FaceTensors
from occau.occlusion.tokens import standard_patch_size
from occau.runtime import autocast, check_precision, resolve_device


@dataclass(frozen=True)
class EvalConfig:
    """How methods are evaluated: which test frames, in what batches, what fills occluded pixels, how timed."""

    stride: int = 1  # every n-th test frame (consecutive video frames are nearly identical)
    batch_size: int = 128
    fill: str = "black"  # of occluded pixels: black, mean, noise, texture
    timing_batch_size: int = 32
    timing_repeats: int = 5
    timing_condition: str = "patch50"
    device: str = "auto"  # auto: cuda when available
    precision: str = "fp32"  # fp32, or bf16/fp16 autocast (occau.runtime.PRECISIONS); the reports are fp32
    # The unknown-occlusion axis: the methods that take a mask, run again with the mask estimated from the occluded
    # picture (occau.evaluation.occlusion_estimates: colour, learnt, none); () = the given mask only.
    mask_estimates: tuple[str, ...] = ()
    estimator: str | None = None  # the learnt estimate's weights (None: the ones shipped with occau)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        unknown = sorted(set(self.mask_estimates) - set(ESTIMATES))
        if unknown:
            raise ValueError(f"eval.mask_estimates: unknown {unknown}; known: {list(ESTIMATES)}")


def evaluate_fold(specs: dict[str, str], data: DataConfig, conditions: list[str], settings: EvalConfig,
                  log=print, timed: bool = True) -> dict[str, Any]:
    """Every method (``{name: "KIND:CHECKPOINT"}``) under every condition on the fold ``data.fold``'s test faces, the
    references on the same faces, and (``timed``) the time per face: ``{"fold", "results", "references",
    "timings"}``, plus ``"unknown_occlusion": {estimate: results}`` when ``settings.mask_estimates`` names estimates
    and a method takes a mask. A study times one fold only: the speed of a method does not depend on the fold."""
    device = resolve_device(settings.device)
    methods = load_methods(specs, patch_size=data.patch_size)
    faces = every_nth(build_face_dataset(data, "test"), settings.stride)
    log(f"fold {data.fold}: evaluating {len(methods.names)} methods x {len(conditions)} conditions on {len(faces)} "
        "faces")
    results = evaluate_conditions(methods, faces, conditions, len(dataset_aus(data.dataset)),
                                  batch_size=settings.batch_size, fill=settings.fill, seed=data.seed, device=device,
                                  precision=settings.precision)
    timings = {}
    if timed:
        timings = time_methods(methods, faces, condition=settings.timing_condition,
                               batch_size=settings.timing_batch_size, repeats=settings.timing_repeats, device=device,
                               precision=settings.precision)
    references = fold_references(build_face_dataset(data, "train"), faces)
    out = {"fold": data.fold, "results": results, "references": references, "timings": timings}
    if settings.mask_estimates and any(group.uses_mask for group in methods.groups):
        out["unknown_occlusion"] = {}
        for name in settings.mask_estimates:
            log(f"fold {data.fold}: the methods that take a mask, with the {name!r} mask estimate")
            out["unknown_occlusion"][name] = evaluate_conditions(
                methods, faces, conditions, len(dataset_aus(data.dataset)), batch_size=settings.batch_size,
                fill=settings.fill, seed=data.seed, device=device, precision=settings.precision,
                estimate=open_estimate(name, settings.estimator))
    return out


def results_over_folds(per_fold: dict[int, dict[str, Any]], data: DataConfig, conditions: list[str],
                       settings: EvalConfig, **provenance: Any) -> dict[str, Any]:
    """The ``results.json`` content of a study from its folds' :func:`evaluate_fold` results (timings: the timed
    fold's), with what was evaluated and how; ``provenance`` adds keys such as the preset or the method specs."""
    folds = sorted(per_fold)
    return {
        "dataset": data.dataset,
        "aus": list(dataset_aus(data.dataset)),
        "folds": folds,
        "seed": data.seed,
        **provenance,
        "conditions": list(conditions),
        "fill": settings.fill,
        "software": software_info(),
        "machine": machine_info(),
        "results": mean_over_folds({f: per_fold[f]["results"] for f in folds}),
        "references": references_over_folds({f: per_fold[f]["references"] for f in folds}),
        "timings": next((per_fold[f]["timings"] for f in folds if per_fold[f]["timings"]), {}),
        **unknown_occlusion_over_folds(per_fold, settings),
    }


def unknown_occlusion_over_folds(per_fold: dict[int, dict[str, Any]], settings: EvalConfig) -> dict[str, Any]:
    """``{"unknown_occlusion": {"estimator", "results": {estimate: {method: {condition: cell}}}, "tokens": {estimate:
    {condition: {"precision", "recall", "f1", "false_cover"}}}}}`` over folds, or {} when the axis was not run."""
    folds = sorted(f for f in per_fold if "unknown_occlusion" in per_fold[f])
    if not folds:
        return {}
    results, tokens = {}, {}
    for name in per_fold[folds[0]]["unknown_occlusion"]:
        by_fold = {f: per_fold[f]["unknown_occlusion"][name] for f in folds}
        results[name] = mean_over_folds({f: {m: c for m, c in r.items() if m != ESTIMATE_KEY}
                                         for f, r in by_fold.items()})
        estimated = by_fold[folds[0]][ESTIMATE_KEY]
        counts = {c: np.sum([by_fold[f][ESTIMATE_KEY][c] for f in folds], axis=0) for c in estimated}
        tokens[name] = {c: token_scores(n) for c, n in counts.items()}
    return {"unknown_occlusion": {"estimator": settings.estimator or "shipped", "results": results,
                                  "tokens": tokens}}


ESTIMATE_KEY = "_estimate_tokens"  # in one fold's estimate results: {condition: [tp, fp, fn, tokens]}


def every_nth(faces: Dataset, stride: int) -> Dataset:
    """Every ``stride``-th test frame: consecutive video frames are nearly identical, so this keeps the evidence."""
    return faces if stride <= 1 else Subset(faces, list(range(0, len(faces), stride)))


@torch.inference_mode()
def evaluate_conditions(
    methods: MethodSet,
    faces: Dataset,
    conditions: list[str],
    num_aus: int,
    *,
    batch_size: int = 128,
    fill: str = "black",
    seed: int = 0,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = True,
    estimate: TokenEstimate | None = None,
) -> dict[str, dict[str, dict]]:
    """``{method: {condition: {"f1_mean", "f1_per_au", "acc_mean", "n_frames"}}}`` for one fold.

    ``estimate``: the methods that take a mask are told the mask it estimates from each occluded picture instead of
    the protocol's (the others are left out), and ``ESTIMATE_KEY`` holds its token counts per condition."""
    device = torch.device(device)
    methods.to(device)
    groups = [g for g in methods.groups if g.uses_mask] if estimate is not None else methods.groups
    names = [n for g in groups for n in g.names]
    results: dict[str, dict[str, dict]] = {name: {} for name in names}
    counts: dict[str, list[int]] = {}
    bar = tqdm(total=len(conditions) * len(faces), desc="evaluate" if estimate is None else "evaluate (estimated mask)",
               unit="face", disable=not progress)
    for condition in conditions:
        tensors = FaceTensors(faces, patch_size=methods.patch_size, condition=condition, fill=fill, seed=seed)
        loader = DataLoader(tensors, batch_size=batch_size, num_workers=num_workers)
        metrics = {name: AUF1(num_aus).to(device) for name in names}
        tally = torch.zeros(4, dtype=torch.long)
        for batch in loader:
            images, token_mask = batch["image"].to(device), batch["token_mask"].to(device)
            if estimate is not None:
                patch = standard_patch_size(images.shape[-1], methods.patch_size)  # the grid FaceTensors used
                judged = estimate(images, patch)  # (B, L)
                tally += token_counts(judged.cpu(), token_mask.cpu())
                token_mask = judged.to(device)
            for group in groups:
                with autocast(device, precision):
                    predicted = group(images, token_mask)
                for name, probs in predicted.items():
                    metrics[name].update(probs.float(), batch["labels"].to(device), batch["label_mask"].to(device))
            bar.update(len(images))
        if estimate is not None:
            counts[condition] = tally.tolist()
        for name, metric in metrics.items():
            scores = metric.compute()
            results[name][condition] = {
                "f1_mean": float(scores["f1_mean"]),
                "f1_per_au": scores["f1_per_au"].cpu().tolist(),
                "acc_mean": float(scores["acc_mean"]),
                "n_frames": len(faces),
            }
        bar.set_postfix_str(condition)
    bar.close()
    if estimate is not None:
        results[ESTIMATE_KEY] = counts
    return results


@torch.inference_mode()
def time_methods(
    methods: MethodSet,
    faces: Dataset,
    *,
    condition: str = "patch50",
    batch_size: int = 32,
    repeats: int = 5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> dict[str, dict]:
    """Median milliseconds per face of each method run alone on the same occluded batch (after one warm-up)."""
    device = torch.device(device)
    methods.to(device)
    tensors = FaceTensors(faces, patch_size=methods.patch_size, condition=condition, seed=seed)
    batch = next(iter(DataLoader(tensors, batch_size=min(batch_size, len(tensors)))))
    images, token_mask = batch["image"].to(device), batch["token_mask"].to(device)
    runners = {name: _alone(group, name) for group in methods.groups for name in group.names}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    with autocast(device, precision):
        for name, run in runners.items():
            run(images, token_mask)  # warm-up
        for _ in range(repeats):  # round-robin, so a burst of machine load hits every method alike
            for name, run in runners.items():
                _sync(device)
                start = time.perf_counter()
                run(images, token_mask)
                _sync(device)
                samples[name].append((time.perf_counter() - start) * 1000 / len(images))
    timings = {
        name: {
            "ms_per_face": statistics.median(values),
            "condition": condition,
            "batch_size": len(images),
            "repeats": repeats,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "precision": precision,
            "input_size": int(images.shape[-1]),
        }
        for name, values in samples.items()
    }
    return timings


def _alone(group: MethodGroup, name: str) -> MethodGroup:
    if isinstance(group, StudentsOnVisible) and len(group.names) > 1:
        return StudentsOnVisible(group.encoder, {name: group.students[name]})
    return group


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mean_over_folds(per_fold: dict[int, dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """``{fold: {method: {condition: cell}}}`` -> ``{method: {condition: merged cell}}`` (see :func:`merge_folds`)."""
    folds = sorted(per_fold)
    first = per_fold[folds[0]]
    return {method: {c: merge_folds({f: per_fold[f][method][c] for f in folds}) for c in by_condition}
            for method, by_condition in first.items()}


def references_over_folds(per_fold: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Merge ``{fold: {reference: cell}}`` (``fold_references``) like the methods; list-valued extras such as the
    WA constant's ``train_base_rate`` are kept per fold as ``{key}_per_fold``."""
    folds = sorted(per_fold)
    merged = {}
    for name, cell in per_fold[folds[0]].items():
        merged[name] = merge_folds({f: per_fold[f][name] for f in folds})
        for key in set(cell) - {"f1_mean", "f1_per_au", "n_frames"}:
            merged[name][f"{key}_per_fold"] = {str(f): per_fold[f][name][key] for f in folds}
    return merged


def merge_folds(cells: dict[int, dict]) -> dict:
    """One method under one condition over folds: per-AU and mean F1 averaged over folds (the headline), the
    per-fold mean and per-AU F1 (the paper's and ME-GraphAU's per-fold tables), and the test frames in all."""
    folds = sorted(cells)
    runs = [cells[f] for f in folds]
    return {
        "f1_mean": float(np.mean([r["f1_mean"] for r in runs])),
        "f1_per_au": np.mean([r["f1_per_au"] for r in runs], axis=0).tolist(),  # (N,)
        "f1_per_fold": {str(f): r["f1_mean"] for f, r in zip(folds, runs)},
        "f1_per_au_per_fold": {str(f): list(r["f1_per_au"]) for f, r in zip(folds, runs)},
        "n_frames": int(sum(r["n_frames"] for r in runs)),
    }
