"""The whole study from one command: data, every training stage for every fold, evaluation, report.

Stages run in data-flow order: the MAE (on SynthFACS the shipped one, which was pretrained on identities outside
every benchmark; ``mae: pretrain`` redoes it), then per fold the teacher (stage 1 -> stage 2), the
occlusion-augmented teacher, the students (the method and its KD ablations, trained side by side) and the
no-pretraining control, then the evaluation of every method under every protocol condition. Each stage writes into its own
folder and is skipped when its exported weights exist, so an interrupted benchmark resumes where it stopped; each
fold's results are written as soon as they exist.

No model sees a fold's test subjects: the MAE is trained once only when its pretraining faces are disjoint from every
test part (SynthFACS's pretraining subjects, or a face collection from ``occau prepare faces``); on BP4D/DISFA it is
pretrained per fold on that fold's training subjects, unless ``mae_checkpoint`` names an MAE to use as it is.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from occau.aus import dataset_aus
from occau.checkpoints.shipped import SYNTHFACS_MAE, shipped_weights
from occau.evaluation.evaluate import (evaluate_conditions, every_nth, mean_over_folds, references_over_folds,
                                      time_methods)
from occau.evaluation.methods import load_methods
from occau.evaluation.references import fold_references
from occau.reports.plots import plot_all
from occau.reports.results import machine_info, software_info, write_results
from occau.training.config import StageConfig, from_dict, set_dotted
from occau.training.data import build_face_dataset
from occau.training.run import train_stage

# Per fold, in data-flow order; each stage's inputs are earlier stages' exported weights. A preset runs the stages
# it defines (student_control, the no-pretraining control, is optional).
STAGE_ORDER = ("teacher_stage1", "teacher_stage2", "teacher_occaug", "student", "student_control")
STUDENT_STAGES = ("student", "student_control")
STAGE_INIT = {  # stage -> {init role: the stage whose weights it starts from}
    "teacher_stage2": {"stage1": "teacher_stage1"},
    "teacher_occaug": {"weights": "teacher_stage2"},
    "student": {"teacher": "teacher_stage2"},
    "student_control": {"teacher": "teacher_stage2"},
}
MAE_SOURCES = ("shipped", "pretrain")
EXPORTED_NAME = {"teacher_stage2": "teacher"}  # method names in results


@dataclass
class BenchConfig:
    """A benchmark preset: the data, folds and conditions, and one partial StageConfig per stage."""

    name: str = "quick"
    # "shipped": start from the MAE packaged with occau (occau.checkpoints.shipped); "pretrain": train
    # stages.mae first (``occau bench synth --pretrain-mae``).
    mae: str = "shipped"
    seed: int = 0  # every stage's training seed (``--seed`` also sets data.seed, the SynthFACS draw)
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields shared by every stage
    trainer: dict[str, Any] = field(default_factory=dict)  # TrainerConfig fields shared by every stage
    folds: list[int] = field(default_factory=lambda: [1, 2, 3])
    conditions: list[str] = field(default_factory=list)
    training_occlusion: dict[str, float] = field(default_factory=dict)  # students and the occlusion-aug teacher
    eval: dict[str, Any] = field(default_factory=dict)  # stride, batch_size, fill, timing_batch_size
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # mae, teacher_stage1, teacher_stage2, student
    mae_checkpoint: str | None = None  # an MAE (e.g. converted official weights) used as is: no MAE stage


def load_bench_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> BenchConfig:
    """A packaged SynthFACS preset (``smoke``/``quick``/``full``), a packaged real-data preset by name
    (``real/bench_bp4d.yaml``) or a YAML file, with ``a.b=value`` overrides (values parsed as YAML)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        packaged = resources.files("occau") / "configs" / name_or_path
        if not path.is_file() and not packaged.is_file():
            raise FileNotFoundError(f"{path}: benchmark config not found (nor a packaged one such as real/bench_bp4d.yaml)")
        text = path.read_text() if path.is_file() else packaged.read_text()
    else:
        preset = resources.files("occau") / "configs" / "bench" / f"synth_{name_or_path}.yaml"
        if not preset.is_file():
            raise ValueError(f"unknown benchmark preset {name_or_path!r}; use smoke, quick, full or a YAML file")
        text = preset.read_text()
    values = yaml.safe_load(text)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        set_dotted(values, key, yaml.safe_load(raw))
    return from_dict(BenchConfig, values)


def stage_config(bench: BenchConfig, stage: str, fold: int, **extra: Any) -> StageConfig:
    """The full StageConfig of one stage: the preset's shared data/trainer settings under the stage's own."""
    values = copy.deepcopy(bench.stages[stage])
    values.setdefault("data", {})
    values["data"] = {**bench.data, "fold": fold, **values["data"]}
    values["trainer"] = {**bench.trainer, **values.get("trainer", {})}
    if stage == "teacher_occaug" or stage in STUDENT_STAGES:
        values["data"]["occlusion"] = dict(bench.training_occlusion)
    values.setdefault("name", stage)
    values.setdefault("seed", bench.seed)
    if values.get("stage") in ("teacher", "student"):  # the AU count (and graph K, as upstream) follow the data
        num_aus = len(dataset_aus(values["data"]["dataset"]))
        values.setdefault("model", {}).setdefault("num_aus", num_aus)
        if values["stage"] == "teacher":
            values["model"].setdefault("neighbor_num", 4 if num_aus >= 12 else 3)
    values["init"] = {**values.get("init", {}), **extra.pop("init", {})}  # e.g. the preset's ImageNet backbone
    for k, v in extra.items():
        values[k] = v
    return from_dict(StageConfig, values)


def _trained(out_dir: Path, config: StageConfig, what: str, log) -> dict[str, Path]:
    """Train a stage unless its exported weights already exist (resumable benchmark)."""
    done = out_dir / "exported.json"
    if done.is_file():
        log(f"{what}: exported weights found, skipped ({done})")
        return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
    log(f"training {what}")
    start = time.perf_counter()
    exported = train_stage(config, out_dir)
    done.write_text(json.dumps({k: str(v) for k, v in exported.items()}, indent=1))
    log(f"{what} done in {time.perf_counter() - start:.0f} s")
    return exported


def run_fold(bench: BenchConfig, fold: int, out_dir: Path, mae_path: Path, log) -> dict[str, Any]:
    """Train every per-fold stage, then evaluate all methods on the fold's test part."""
    fold_dir = out_dir / f"fold{fold}"
    finished = fold_dir / "fold_results.json"
    if finished.is_file():
        log(f"fold {fold}: already evaluated ({finished})")
        return json.loads(finished.read_text())
    paths: dict[str, Path] = {}
    for stage in (s for s in STAGE_ORDER if s in bench.stages):
        init = {role: str(paths[source]) for role, source in STAGE_INIT.get(stage, {}).items()}
        if stage in STUDENT_STAGES:
            init["mae"] = str(mae_path)
        config = stage_config(bench, stage, fold, init=init, name=EXPORTED_NAME.get(stage, stage))
        exported = _trained(fold_dir / stage, config, f"fold {fold}: {stage}", log)
        paths.update(exported if stage in STUDENT_STAGES else {stage: next(iter(exported.values()))})
    return _evaluate_fold(bench, fold, fold_dir, mae_path, paths, log)


def _evaluate_fold(bench: BenchConfig, fold: int, fold_dir: Path, mae_path: Path, paths: dict[str, Path], log):
    teacher, occaug = paths["teacher_stage2"], paths["teacher_occaug"]
    specs = {"teacher": str(teacher), "teacher_occaug": str(occaug), "mae_recon_teacher": f"{mae_path}+{teacher}"}
    specs |= {name: str(p) for name, p in paths.items() if name.startswith("student")}
    methods = load_methods(specs)
    data = from_dict(StageConfig, {"data": {**bench.data, "fold": fold}}).data
    faces = every_nth(build_face_dataset(data, "test"), int(bench.eval.get("stride", 1)))
    log(f"fold {fold}: evaluating {len(methods.names)} methods x {len(bench.conditions)} conditions on {len(faces)} faces")
    results = evaluate_conditions(methods, faces, bench.conditions, len(dataset_aus(data.dataset)),
                                  batch_size=int(bench.eval.get("batch_size", 128)),
                                  fill=bench.eval.get("fill", "black"), seed=data.seed)
    timings = time_methods(methods, faces, batch_size=int(bench.eval.get("timing_batch_size", 32)),
                           repeats=int(bench.eval.get("timing_repeats", 5)))
    fold_result = {"fold": fold, "results": results, "references": _references(bench, fold), "timings": timings}
    (fold_dir / "fold_results.json").write_text(json.dumps(fold_result, indent=1))
    return fold_result


def _references(bench: BenchConfig, fold: int) -> dict[str, dict]:
    """The reference lines on the fold's evaluated test faces (labels only, so cheap enough to redo on resume)."""
    data = from_dict(StageConfig, {"data": {**bench.data, "fold": fold}}).data
    test = every_nth(build_face_dataset(data, "test"), int(bench.eval.get("stride", 1)))
    return fold_references(build_face_dataset(data, "train"), test)


def _mae_for(bench: BenchConfig, fold: int, out_dir: Path, log) -> Path:
    """The MAE of a fold's students and reconstruct baseline: a given checkpoint, the shipped SynthFACS MAE, or one
    pretrained now (``mae: pretrain``) only on faces outside the fold's test part."""
    if bench.mae_checkpoint:
        return Path(bench.mae_checkpoint)
    if bench.mae not in MAE_SOURCES:
        raise ValueError(f"benchmark preset {bench.name}: mae must be one of {MAE_SOURCES}, got {bench.mae!r}")
    if bench.mae == "shipped":
        path = shipped_weights(SYNTHFACS_MAE)
        log(f"fold {fold}: mae: the shipped SynthFACS MAE ({path.name})")
        return path
    config = stage_config(bench, "mae", fold=fold, name="mae")
    if mae_is_shared(config):
        return next(iter(_trained(out_dir / "mae", config, "mae (faces outside every fold)", log).values()))
    return next(iter(_trained(out_dir / f"fold{fold}" / "mae", config, f"fold {fold}: mae (training subjects)",
                              log).values()))


def mae_is_shared(config: StageConfig) -> bool:
    """True when the MAE's pretraining faces are disjoint from every test part, so one MAE serves all folds."""
    if config.data.source == "synthfacs":
        return True  # SynthFACS's pretraining subjects are in no fold
    from occau.data.prepared import read_info

    return read_info(Path(config.data.root))["dataset"] == "faces"


def run_benchmark(bench: BenchConfig, out_dir: str | Path, log=print) -> Path:
    """Run everything; returns the report folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bench.data.setdefault("cache_dir", str(out_dir / "data"))
    log(f"benchmark {bench.name}: output in {out_dir}")
    per_fold = {fold: run_fold(bench, fold, out_dir, _mae_for(bench, fold, out_dir, log), log) for fold in bench.folds}
    data = from_dict(StageConfig, {"data": {**bench.data, "fold": bench.folds[0]}}).data
    results = {
        "dataset": data.dataset,
        "aus": list(dataset_aus(data.dataset)),
        "folds": list(bench.folds),
        "seed": data.seed,
        "preset": bench.name,
        "conditions": list(bench.conditions),
        "fill": bench.eval.get("fill", "black"),
        "software": software_info(),
        "machine": machine_info(),
        "results": mean_over_folds({f: r["results"] for f, r in per_fold.items()}),
        "references": references_over_folds({f: r.get("references") or _references(bench, f)
                                             for f, r in per_fold.items()}),  # folds evaluated before references
        "timings": per_fold[bench.folds[0]]["timings"],
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    report = out_dir / "report"
    write_results(report, results)
    plot_all(results, report)
    log(f"benchmark {bench.name} finished in {results['wall_time_s']:.0f} s; report: {report / 'results.md'}")
    return report

