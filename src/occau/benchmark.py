"""The whole study from one command: data, every training stage for every fold, evaluation, report.

A benchmark preset (``configs/bench/*.yaml``) holds the study as data: the shared data and trainer settings, the
folds and conditions, and the stage graph (each stage a partial StageConfig, what it starts ``from``, whether it
trains ``occluded`` and whether its models are methods to ``evaluate``), plus ``methods`` that need no training of
their own (``recon:{mae}+{teacher_stage2}``). The MAE comes first (on SynthFACS the shipped one, pretrained on
identities outside every benchmark; ``mae: pretrain`` redoes it); then per fold every stage in the order written,
then every method under every protocol condition. Each stage writes into its own folder and is skipped when its
exported weights exist, so an interrupted benchmark resumes where it stopped; each fold's results are written as
soon as they exist.

No model sees a fold's test subjects: the MAE is trained once only when its pretraining faces are disjoint from every
test part (SynthFACS's pretraining subjects, or a face collection from ``occau prepare faces``); on BP4D/DISFA it is
pretrained per fold on that fold's training subjects, unless ``mae_checkpoint`` names an MAE to use as it is.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import lightning as L

from occau.aus import dataset_aus
from occau.checkpoints.shipped import SYNTHFACS_MAE, shipped_weights
from occau.config import apply_overrides, from_dict, read_yaml, to_dict
from occau.data.config import DataConfig
from occau.evaluation.evaluate import EvalConfig, evaluate_fold, results_over_folds
from occau.evaluation.methods import parse_spec
from occau.occlusion import CONDITIONS
from occau.reports.results import write_report
from occau.training.config import StageConfig, TrainerConfig, check_same_recipe
from occau.training.run import train_stage

MAE_STAGE = "mae"  # the stage that pretrains the MAE (``mae: pretrain``); ``from: {mae: mae}`` names its model
MAE_SOURCES = ("shipped", "pretrain")
GRAPH_KEYS = ("from", "occluded", "evaluate")  # a bench stage's keys beyond its StageConfig
METHOD_KIND_OF_STAGE = {"teacher": "teacher", "student": "student"}  # how a stage's trained models are evaluated


@dataclass
class BenchConfig:
    """A benchmark preset: the data, folds and conditions, the stage graph and the extra methods."""

    name: str = "quick"
    # "shipped": start from the MAE packaged with occau (occau.checkpoints.shipped); "pretrain": train
    # stages.mae first (``occau bench synth --pretrain-mae``).
    mae: str = "shipped"
    seed: int = 0  # every stage's training seed (``--seed`` also sets data.seed, the SynthFACS draw)
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields shared by every stage
    trainer: dict[str, Any] = field(default_factory=dict)  # TrainerConfig fields shared by every stage
    folds: list[int] = field(default_factory=lambda: [1, 2, 3])
    conditions: list[str] = field(default_factory=list)
    training_occlusion: dict[str, float] = field(default_factory=dict)  # the mixture of every `occluded` stage
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> partial StageConfig + GRAPH_KEYS
    methods: dict[str, str] = field(default_factory=dict)  # name -> KIND:CHECKPOINT with {stage} placeholders
    mae_checkpoint: str | None = None  # an MAE (e.g. converted official weights) used as is: no MAE stage

    def __post_init__(self) -> None:
        """Everything a typo could break is checked here, before any training: every stage's full config (for the
        first fold), the graph's references, the conditions and the method specs."""
        for name, values in self.stages.items():
            if not isinstance(values, dict):
                raise ValueError(f"stages.{name}: expected a mapping of stage settings or null, got {values!r}")
        if self.mae not in MAE_SOURCES:
            raise ValueError(f"mae must be one of {MAE_SOURCES}, got {self.mae!r}")
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"conditions: unknown {unknown}; known: {list(CONDITIONS)}")
        from_dict(DataConfig, {**self.data, "fold": self.folds[0]}, "data.")
        from_dict(TrainerConfig, self.trainer, "trainer.")
        plan = stage_plan(self)
        if self.mae == "pretrain" and not self.mae_checkpoint:
            stage_config(self, MAE_STAGE, self.folds[0])
        for stage in plan:
            stage_config(self, stage.name, self.folds[0], {role: "<checkpoint>" for role in stage.inputs})
        for name, spec in self.methods.items():
            parse_spec(spec)
            missing = set(_placeholders(spec)) - {MAE_STAGE} - {s.name for s in plan}
            if missing:
                raise ValueError(f"methods.{name}: {spec!r} names no stage {sorted(missing)}")


@dataclass(frozen=True)
class BenchStage:
    """One per-fold stage of the study: its name, kind, and place in the graph."""

    name: str
    kind: str
    inputs: dict[str, str]  # init role -> an earlier stage's name, or MAE_STAGE (the benchmark's MAE)
    occluded: bool  # trains under the benchmark's training occlusion mixture
    evaluate: bool  # its trained models are methods of the study


def stage_plan(bench: BenchConfig) -> list[BenchStage]:
    """The per-fold stages in the order written (the MAE stage runs before them, once or per fold)."""
    plan: list[BenchStage] = []
    for name, values in bench.stages.items():
        if name == MAE_STAGE:
            continue
        inputs = dict(values.get("from") or {})
        earlier = {MAE_STAGE} | {s.name for s in plan}
        for role, source in inputs.items():
            if source not in earlier:
                raise ValueError(f"stages.{name}.from.{role}: {source!r} is not an earlier stage ({sorted(earlier)})")
        plan.append(BenchStage(name, values.get("stage", "teacher"), inputs, bool(values.get("occluded", False)),
                               bool(values.get("evaluate", True))))
    return plan


def load_bench_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> BenchConfig:
    """A packaged SynthFACS preset (``smoke``/``quick``/``full``), a packaged real-data preset by name
    (``real/bench_bp4d.yaml``) or a YAML file, with ``a.b=value`` overrides (values parsed as YAML)."""
    path = _preset_path(name_or_path)
    try:
        return from_dict(BenchConfig, apply_overrides(read_yaml(path), overrides))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    packaged = resources.files("occau") / "configs"
    if path.suffix in (".yaml", ".yml"):
        if path.is_file():
            return path
        if (packaged / name_or_path).is_file():
            return Path(str(packaged / name_or_path))
        raise FileNotFoundError(f"{path}: benchmark config not found (nor a packaged one such as real/bench_bp4d.yaml)")
    preset = packaged / "bench" / f"synth_{name_or_path}.yaml"
    if not preset.is_file():
        raise ValueError(f"unknown benchmark preset {name_or_path!r}; use smoke, quick, full or a YAML file")
    return Path(str(preset))


def stage_config(bench: BenchConfig, stage: str, fold: int, init: dict[str, str] | None = None) -> StageConfig:
    """The full StageConfig of one stage: the preset's shared data/trainer settings under the stage's own."""
    values = {k: v for k, v in copy.deepcopy(bench.stages[stage]).items() if k not in GRAPH_KEYS}
    values["data"] = {**bench.data, "fold": fold, **values.get("data", {})}
    values["trainer"] = {**bench.trainer, **values.get("trainer", {})}
    if bench.stages[stage].get("occluded"):
        values["data"]["occlusion"] = dict(bench.training_occlusion)
    values.setdefault("name", stage)
    values.setdefault("seed", bench.seed)
    if values.get("stage") in ("teacher", "student"):  # the AU count (and graph K, as upstream) follow the data
        num_aus = len(dataset_aus(values["data"]["dataset"]))
        values.setdefault("model", {}).setdefault("num_aus", num_aus)
        if values["stage"] == "teacher":
            values["model"].setdefault("neighbor_num", 4 if num_aus >= 12 else 3)
    values["init"] = {**values.get("init", {}), **(init or {})}  # e.g. the preset's ImageNet backbone
    try:
        return from_dict(StageConfig, values)
    except ValueError as err:
        raise ValueError(f"stages.{stage}: {err}") from None


def _trained(out_dir: Path, config: StageConfig, what: str, log, callbacks: Sequence[L.Callback] = ()
             ) -> dict[str, Path]:
    """Train a stage unless its exported weights already exist (resumable benchmark)."""
    done = out_dir / "exported.json"
    if done.is_file():
        check_same_recipe(out_dir, config)
        log(f"{what}: exported weights found, skipped ({done})")
        return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
    log(f"training {what}")
    start = time.perf_counter()
    exported = train_stage(config, out_dir, callbacks=callbacks)
    done.write_text(json.dumps({k: str(v) for k, v in exported.items()}, indent=1))
    log(f"{what} done in {time.perf_counter() - start:.0f} s")
    return exported


def run_fold(bench: BenchConfig, fold: int, out_dir: Path, mae_path: Path, log,
             callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Train every per-fold stage, then evaluate all methods on the fold's test part. A stage already trained with the
    same recipe is reused (another recipe is refused: ``check_same_recipe``); the evaluation is reused when its
    methods, conditions and settings are unchanged (``evaluated_with.json``), else run again."""
    fold_dir = out_dir / f"fold{fold}"
    models: dict[str, Path] = {MAE_STAGE: mae_path}  # stage -> its trained model (a stage with one)
    specs: dict[str, str] = {}
    for stage in stage_plan(bench):
        init = {role: str(_single_model(models, source, stage.name)) for role, source in stage.inputs.items()}
        config = stage_config(bench, stage.name, fold, init)
        exported = _trained(fold_dir / stage.name, config, f"fold {fold}: {stage.name}", log, callbacks)
        models[stage.name] = next(iter(exported.values())) if len(exported) == 1 else None
        if stage.evaluate:
            specs |= {name: f"{METHOD_KIND_OF_STAGE[stage.kind]}:{path}" for name, path in exported.items()}
    specs |= {name: _fill(spec, models, name) for name, spec in bench.methods.items()}
    finished, settings_file = fold_dir / "fold_results.json", fold_dir / "evaluated_with.json"
    scoring = {k: v for k, v in to_dict(bench.eval).items() if k not in ("device", "batch_size")}  # not the numbers
    settings = json.loads(json.dumps({"methods": sorted(specs), "conditions": list(bench.conditions),
                                      "eval": scoring}))
    if finished.is_file():
        # A fold evaluated before this file existed has none: taken as it is.
        if not settings_file.is_file() or json.loads(settings_file.read_text()) == settings:
            log(f"fold {fold}: already evaluated ({finished})")
            return json.loads(finished.read_text())
        log(f"fold {fold}: methods, conditions or evaluation settings changed since {finished}: evaluating again")
    data = from_dict(DataConfig, {**bench.data, "fold": fold})
    fold_result = evaluate_fold(specs, data, bench.conditions, bench.eval, log, timed=fold == bench.folds[0])
    fold_dir.mkdir(parents=True, exist_ok=True)  # a preset of methods only trains nothing here
    finished.write_text(json.dumps(fold_result, indent=1))
    settings_file.write_text(json.dumps(settings, indent=1))
    return fold_result


def _single_model(models: dict[str, Path | None], stage: str, reader: str) -> Path:
    if models[stage] is None:
        raise ValueError(f"stage {reader} starts from {stage}, which trains several models; name one stage per model")
    return models[stage]


def _placeholders(spec: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", spec)


def _fill(spec: str, models: dict[str, Path | None], method: str) -> str:
    """A method spec with each ``{stage}`` replaced by that stage's trained model."""
    return re.sub(r"\{(\w+)\}", lambda m: str(_single_model(models, m.group(1), f"method {method}")), spec)


def _mae_for(bench: BenchConfig, fold: int, out_dir: Path, log, callbacks: Sequence[L.Callback] = ()) -> Path:
    """The MAE of a fold's students and reconstruct baseline: a given checkpoint, the shipped SynthFACS MAE, or one
    pretrained now (``mae: pretrain``) only on faces outside the fold's test part."""
    if bench.mae_checkpoint:
        return Path(bench.mae_checkpoint)
    if bench.mae == "shipped":
        path = shipped_weights(SYNTHFACS_MAE)
        log(f"fold {fold}: mae: the shipped SynthFACS MAE ({path.name})")
        return path
    config = stage_config(bench, MAE_STAGE, fold)
    if mae_is_shared(config):
        return next(iter(_trained(out_dir / "mae", config, "mae (faces outside every fold)", log, callbacks).values()))
    return next(iter(_trained(out_dir / f"fold{fold}" / "mae", config, f"fold {fold}: mae (training subjects)",
                              log, callbacks).values()))


def mae_is_shared(config: StageConfig) -> bool:
    """True when the MAE's pretraining faces are disjoint from every test part, so one MAE serves all folds."""
    if config.data.source == "synthfacs":
        return True  # SynthFACS's pretraining subjects are in no fold
    from occau.data.prepared import read_info

    return read_info(Path(config.data.root))["dataset"] == "faces"


def run_benchmark(bench: BenchConfig, out_dir: str | Path, log=print, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Run everything; returns the report folder. ``callbacks`` join every stage's trainer (e.g. a profiler)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = RunTimes(out_dir, log)
    log = clock.timed(log)  # every progress line also keeps this invocation's time on disk
    bench.data.setdefault("cache_dir", str(out_dir / "data"))
    log(f"benchmark {bench.name}: output in {out_dir}")
    per_fold = {fold: run_fold(bench, fold, out_dir, _mae_for(bench, fold, out_dir, log, callbacks), log, callbacks)
                for fold in bench.folds}
    data = from_dict(DataConfig, {**bench.data, "fold": bench.folds[0]})
    results = results_over_folds(per_fold, data, bench.conditions, bench.eval, preset=bench.name)
    invocations = clock.update()
    this_run = invocations[-1]
    results["wall_time_s"] = round(sum(invocations), 1)
    results["invocations"] = len(invocations)
    report = out_dir / "report"
    write_report(results, report)
    log(f"benchmark {bench.name} finished in {this_run:.0f} s ({results['wall_time_s']:.0f} s over "
        f"{len(invocations)} invocation(s) of this folder); report: {report / 'results.md'}")
    return report


class RunTimes:
    """``OUT/run_times.json``: the wall time of every invocation of a benchmark folder (pauses included), so a
    resumed run's report gives what its results cost over all of them, not the seconds of the last, resuming one. The
    running invocation's entry is rewritten at every ``update`` (each log line: a stage started or finished, a fold
    evaluated), so one that is killed still counts up to its last step."""

    def __init__(self, out_dir: Path, log) -> None:
        self.path = out_dir / "run_times.json"
        self.start = time.perf_counter()
        self.invocations: list[float] = []
        if self.path.is_file():
            try:
                self.invocations = [float(t) for t in json.loads(self.path.read_text())["invocations_s"]]
            except (ValueError, KeyError, TypeError) as error:
                log(f"{self.path}: not a list of run times ({error!r}); counting from this invocation on")
        self.invocations.append(0.0)
        self.update()

    def update(self) -> list[float]:
        """This invocation's seconds so far, written; returns every invocation's."""
        self.invocations[-1] = round(time.perf_counter() - self.start, 1)
        self.path.write_text(json.dumps({"invocations_s": self.invocations}, indent=1))
        return list(self.invocations)

    def timed(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` that updates the clock before each line."""

        def log_and_update(message: str) -> None:
            self.update()
            log(message)
        return log_and_update


def run_draws(benches: Mapping[int, BenchConfig], out_dir: str | Path, log=print,
              callbacks: Sequence[L.Callback] = ()) -> Path:
    """The study over SynthFACS draws: each seed's preset (``OUT/seed<s>/``, each its own faces and training seed,
    each resumable on its own), then one report over them (``OUT/report/draws.md``, occau.reports.draws).
    Returns the report's Markdown file."""
    from occau.reports.draws import write_draws_report

    out_dir = Path(out_dir)
    per_draw = {}
    for number, (seed, bench) in enumerate(benches.items(), start=1):
        log(f"draw {seed} ({number} of {len(benches)})")
        report = run_benchmark(bench, out_dir / f"seed{seed}", log=log, callbacks=callbacks)
        per_draw[seed] = json.loads((report / "results.json").read_text())
    md = write_draws_report(per_draw, out_dir / "report")
    log(f"study over {len(benches)} draws: {md}")
    return md
