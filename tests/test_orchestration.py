"""The orchestration layer as data: presets checked before any training, the stage graph a preset declares, and
the registries (stage kinds, method kinds, condition groups) that new baselines and conditions plug into."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import occau.benchmark as benchmark
from occau.benchmark import RunTimes, load_bench_config, stage_config, stage_plan
from occau.config import from_dict
from occau.data.synthfacs.dataset import PRESETS
from occau.evaluation.methods import METHOD_KINDS, load_methods, parse_spec
from occau.occlusion import CONDITION_GROUPS, CONDITIONS, PATCH_RATIOS
from occau.reports.plots import heatmap_conditions
from occau.training.config import (STAGE_KINDS, RecipeChangedError, StageConfig, load_config, recipe_changes,
                                   save_config)
from occau.training.stages import STAGES


@pytest.mark.parametrize("override, named", [
    ("stages.teacher_stage2.loss.edge_wieght=0.1", "loss.edge_wieght"),
    ("stages.student.model.spatial_mapz=8", "model.spatial_mapz"),
    ("stages.student.loss.variants.student.nod=1", "loss.variants.student.nod"),
    ("stages.student.loss.kd.feature_distnce=cosine", "loss.variants.student.feature_distnce"),
    ("stages.student.optim.lrr=1", "optim.lrr"),
    ("stages.mae.model.arch=mae_vit_tiniest", "mae_vit_tiniest"),
    ("data.batchsize=3", "data.batchsize"),
    ("trainer.devicez=2", "trainer.devicez"),
    ("eval.strid=2", "eval.strid"),
    ("foldz=[1]", "foldz"),
    ("conditions=[clean, patch55]", "patch55"),
    ("stages.student.from.teacher=teacher_stage3", "teacher_stage3"),
    ("methods.x=recon:{mae}+{teacher_stage9}", "teacher_stage9"),
    ("methods.x=reconstruct:a+b", "KIND:CHECKPOINT"),
])  # fmt: skip
def test_a_misspelt_key_fails_when_the_preset_is_read_naming_it(override: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        load_bench_config("smoke", [override])


def test_a_stage_set_to_null_on_the_command_line_is_dropped_as_in_a_preset() -> None:
    """``stages.NAME=null`` removes the stage (the study without its scratch ViT), like ``NAME: null`` in YAML; a
    stage set to anything but a mapping is refused by name."""
    study = load_bench_config("study")
    trimmed = load_bench_config("study", ["stages.scratch_vit=null"])
    assert [s.name for s in stage_plan(trimmed)] == [s.name for s in stage_plan(study) if s.name != "scratch_vit"]
    with pytest.raises(ValueError, match=re.escape("stages.scratch_vit: expected a mapping")):
        load_bench_config("study", ["stages.scratch_vit=3"])


def test_a_misspelt_key_stops_occau_bench_before_training(tmp_path: Path, capsys) -> None:
    from occau.cli import main

    assert main(["bench", "synth", "--preset", "smoke", "--out", str(tmp_path / "run"),
                 "stages.teacher_stage1.model.backbon=resnet18"]) == 2
    assert "model.backbon" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_stage_yaml_names_its_misspelt_model_and_loss_keys(tmp_path: Path) -> None:
    path = tmp_path / "teacher.yaml"
    path.write_text("stage: teacher\nmodel: {arch: resnet18, img_size: 64}\nloss: {edge_weight: 0.01}\n")
    config = load_config(path)
    assert (config.model.backbone, config.model.img_size, config.loss.edge_weight) == ("resnet18", 64, 0.01)
    for override, named in (("loss.edge_wieght=1", "loss.edge_wieght"), ("model.stag=1", "model.stag"),
                            ("model.arch=resnet7", "resnet7")):
        with pytest.raises(ValueError, match=re.escape(named)):
            load_config(path, [override])


def test_every_stage_kind_has_a_config_and_a_module() -> None:
    assert STAGES.keys() == STAGE_KINDS.keys()
    for kind, module in STAGES.items():
        assert callable(getattr(module, "build")), kind
        assert StageConfig(stage=kind).model == STAGE_KINDS[kind].model()  # defaults round-trip


def test_the_patch_size_of_an_mae_stage_must_be_the_data_grid() -> None:
    with pytest.raises(ValueError, match="data.patch_size is 16 but the MAE's model.patch_size is 8"):
        from_dict(StageConfig, {"stage": "mae", "model": {"arch": "mae_vit_tiny_patch8_64"},
                                "data": {"patch_size": 16}})


def test_presets_share_one_base_and_differ_only_where_they_say() -> None:
    smoke, quick, full = (load_bench_config(p) for p in ("smoke", "quick", "full"))
    assert quick.training_occlusion == smoke.training_occlusion == full.training_occlusion
    assert [s.name for s in stage_plan(quick)] + ["student_control"] == [s.name for s in stage_plan(full)]  # null
    assert full.folds == [1, 2, 3] and quick.folds == [1]
    assert stage_config(full, "student", 1).model == stage_config(quick, "student", 1).model
    assert stage_config(smoke, "student", 1).model.spatial_maps == 4  # the smoke override, on top of the base


def test_the_study_preset_is_quick_plus_the_ablations_and_the_fair_controls() -> None:
    """The study over draws (issue 20): quick's data and teachers; the method, its three KD ablations, the fair
    control and the scratch ViT at one length (9 epochs); the control's own recipe (no layer decay, long warmup)."""
    quick, study = load_bench_config("quick"), load_bench_config("study")
    assert study.data == quick.data and study.folds == [1] and study.conditions == quick.conditions
    assert [s.name for s in stage_plan(study)] == [s.name for s in stage_plan(quick)] + ["student_control",
                                                                                           "scratch_vit"]
    init = {"mae": "m", "teacher": "t"}
    student, control, scratch = (stage_config(study, s, 1, init) for s in ("student", "student_control", "scratch_vit"))
    assert list(student.loss.variants) == ["student", "student_no_kd", "student_node_kd", "student_edge_kd"]
    assert student.loss.distillation()["student_node_kd"].edge == 0 and student.loss.distillation()[
        "student_edge_kd"].node == 0
    assert student.optim.epochs == control.optim.epochs == scratch.optim.epochs == 9  # one length for all
    assert student.optim.layer_decay == 0.75 and control.optim.layer_decay == scratch.optim.layer_decay == 1.0
    assert control.loss.encoder_init == scratch.loss.encoder_init == "random" and control.optim.warmup_epochs == 2.0
    assert list(control.loss.variants) == ["student_random_init"] and list(scratch.loss.variants) == [
        "scratch_vit_linear"]
    assert control.model == student.model and scratch.model.spatial_maps == 65


def test_the_length_study_doubles_the_method_and_the_control_and_keeps_the_rest_of_the_study() -> None:
    """benchmarks/configs/study_long.yaml (the clean-gap length lever over draws): the study's data, teachers and
    recipes, only the method, its no-KD twin and the fair control, each at twice the study's steps, the control's
    warmup scaled with its schedule."""
    study = load_bench_config("study")
    long = load_bench_config(str(Path(__file__).parents[1] / "benchmarks" / "configs" / "study_long.yaml"))
    assert long.data == study.data and long.folds == study.folds and long.conditions == study.conditions
    assert [s.name for s in stage_plan(long)] == ["teacher_stage1", "teacher_stage2", "student", "student_control"]
    init = {"mae": "m", "teacher": "t"}
    for stage in ("teacher_stage1", "teacher_stage2"):
        assert stage_config(long, stage, 1) == stage_config(study, stage, 1)  # its draws reuse the study's teachers
    student, control = (stage_config(long, s, 1, init) for s in ("student", "student_control"))
    short_student, short_control = (stage_config(study, s, 1, init) for s in ("student", "student_control"))
    assert list(student.loss.variants) == ["student", "student_no_kd"]
    assert student.optim.epochs == control.optim.epochs == 2 * short_student.optim.epochs == 18
    assert control.optim.warmup_epochs / control.optim.epochs == pytest.approx(
        short_control.optim.warmup_epochs / short_control.optim.epochs, abs=0.01)
    assert student.optim.lr == short_student.optim.lr and control.optim.layer_decay == short_control.optim.layer_decay
    assert control.loss == short_control.loss and not long.eval.mask_estimates


def test_the_full_preset_trains_the_fair_control_for_as_many_steps_as_the_method() -> None:
    """The full report's ``student_random_init`` is the study's fair control (no layer decay, lr 1e-3, warmup about a
    fifth of the steps), trained as long as the method, and both about as many steps as the study's 9 quick epochs
    (an epoch's steps grow with the labelled subjects: full has 96, quick 60)."""
    full, study = load_bench_config("full"), load_bench_config("study")
    init = {"mae": "m", "teacher": "t"}
    student, control = (stage_config(full, s, 1, init) for s in ("student", "student_control"))
    fair = stage_config(study, "student_control", 1, init)
    assert control.optim.layer_decay == fair.optim.layer_decay == 1.0 and control.optim.lr == fair.optim.lr == 1e-3
    assert control.optim.epochs == student.optim.epochs == stage_config(full, "teacher_occaug", 1).optim.epochs == 6
    subjects = PRESETS["full"].n_subjects / PRESETS["quick"].n_subjects
    assert abs(6 * subjects - 9) / 9 < 0.1  # ~740 steps both ways
    assert control.optim.warmup_epochs / control.optim.epochs == pytest.approx(fair.optim.warmup_epochs / 9, abs=0.02)
    assert control.model == student.model and control.loss.kd == student.loss.kd
    assert list(control.loss.variants) == ["student_random_init"] and student.optim.layer_decay == 0.75


def _fake_fold(monkeypatch, bench, tmp_path: Path) -> tuple[dict, dict]:
    """Run one fold's orchestration with training and evaluation replaced by recorders."""
    trained, evaluated = {}, {}

    def fake_trained(out_dir: Path, config: StageConfig, what: str, log, callbacks=()) -> dict[str, Path]:
        trained[out_dir.name] = config
        names = list(config.loss.distillation()) if config.stage == "student" else [config.name]
        return {n: out_dir / f"{n}.safetensors" for n in names}

    def fake_evaluate(specs, data, conditions, settings, log, timed=True):
        evaluated.update(specs)
        return {"fold": data.fold, "results": {}, "references": {}, "timings": {}}

    monkeypatch.setattr(benchmark, "_trained", fake_trained)
    monkeypatch.setattr(benchmark, "evaluate_fold", fake_evaluate)
    (tmp_path / "fold1").mkdir()
    benchmark.run_fold(bench, 1, tmp_path, tmp_path / "mae.safetensors", log=lambda m: None)
    return trained, evaluated


def test_the_stage_graph_wires_each_stage_to_what_it_starts_from(monkeypatch, tmp_path: Path) -> None:
    trained, specs = _fake_fold(monkeypatch, load_bench_config("smoke"), tmp_path)
    teacher = str(tmp_path / "fold1" / "teacher_stage2" / "teacher.safetensors")
    assert trained["teacher_stage2"].init["stage1"].endswith("teacher_stage1/teacher_stage1.safetensors")
    assert trained["teacher_occaug"].init["weights"] == teacher and trained["teacher_occaug"].data.occlusion
    assert trained["teacher_stage2"].data.occlusion is None  # the clean teacher never sees occlusion
    assert trained["student"].init == {"mae": str(tmp_path / "mae.safetensors"), "teacher": teacher}
    assert list(specs) == ["teacher", "teacher_occaug", "student", "student_no_kd", "student_node_kd",
                           "student_edge_kd", "student_random_init", "mae_recon_teacher"]  # stage 1 is no method
    assert specs["mae_recon_teacher"] == f"recon:{tmp_path / 'mae.safetensors'}+{teacher}"
    assert all(parse_spec(s)[0] in METHOD_KINDS for s in specs.values())


def test_a_trained_baseline_is_one_yaml_entry(monkeypatch, tmp_path: Path) -> None:
    """docs/extending.md's worked example: an occlusion-augmented teacher trained under noise fills is a new stage
    in the preset, evaluated like the other teachers, with no code change."""
    entry = ("{stage: teacher, from: {weights: teacher_stage2}, occluded: true, data: {occlusion_fills: [noise]},"
             " model: {backbone: resnet18, stage: 2, img_size: 64}, optim: {lr: 3e-4, epochs: 3}}")
    bench = load_bench_config("smoke", [f"stages.teacher_occaug_noise={entry}"])
    trained, specs = _fake_fold(monkeypatch, bench, tmp_path)
    config = trained["teacher_occaug_noise"]
    assert config.data.occlusion_fills == ("noise",) and config.data.occlusion == bench.training_occlusion
    assert specs["teacher_occaug_noise"] == f"teacher:{tmp_path / 'fold1' / 'teacher_occaug_noise'}/" \
                                           "teacher_occaug_noise.safetensors"


def test_every_condition_is_in_one_report_group_and_the_heatmaps_show_all_but_the_patch_curve() -> None:
    grouped = [c for group in CONDITION_GROUPS.values() for c in group]
    assert sorted(grouped) == sorted(CONDITIONS)
    assert set(PATCH_RATIOS) == set(CONDITION_GROUPS["patch"])
    shown = heatmap_conditions(CONDITIONS)
    assert shown[0] == "clean" and {"square25", "square50", "mask"} <= set(shown)
    assert set(shown) | set(CONDITION_GROUPS["patch"]) == set(CONDITIONS)


def test_method_specs_name_their_kind() -> None:
    assert parse_spec("recon:a.safetensors+b.safetensors") == ("recon", "a.safetensors+b.safetensors")
    for bad in ("runs/teacher.safetensors", "teachr:x.safetensors", "student:"):
        with pytest.raises(ValueError, match="KIND:CHECKPOINT"):
            parse_spec(bad)
    with pytest.raises(ValueError, match="KIND:CHECKPOINT"):
        load_methods({"t": "t.safetensors"})


def test_base_presets_merge_mappings_and_null_removes_a_key(tmp_path: Path) -> None:
    from occau.config import read_yaml

    (tmp_path / "base.yaml").write_text("a: {x: 1, y: 2}\nb: [1, 2]\nc: {k: 1}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\na: {y: 3, z: 4}\nb: [5]\nc: null\n")
    assert read_yaml(tmp_path / "child.yaml") == {"a": {"x": 1, "y": 3, "z": 4}, "b": [5]}
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="bad.yaml: expected a mapping"):
        read_yaml(tmp_path / "bad.yaml")


def test_a_preset_copied_out_of_the_package_finds_its_packaged_base(tmp_path: Path) -> None:
    """``base: synth_base.yaml`` in a copy of the quick preset resolves to the packaged bench/synth_base.yaml; a base
    found nowhere names both places it looked."""
    import shutil

    from occau.config import PACKAGED_CONFIGS

    shutil.copy(PACKAGED_CONFIGS / "bench" / "synth_quick.yaml", tmp_path / "my_quick.yaml")
    assert load_bench_config(str(tmp_path / "my_quick.yaml")) == load_bench_config("quick")
    (tmp_path / "orphan.yaml").write_text("base: nowhere.yaml\nname: x\n")
    with pytest.raises(FileNotFoundError, match=r"orphan.yaml: base 'nowhere.yaml' not found beside it \(.*"
                                                r"nowhere.yaml\) nor among the packaged configs"):
        load_bench_config(str(tmp_path / "orphan.yaml"))


def test_occau_train_names_a_misspelt_key_and_trains_nothing(tmp_path: Path, capsys) -> None:
    from occau.cli import main

    path = tmp_path / "teacher.yaml"
    path.write_text("stage: teacher\nmodel: {arch: resnet18, img_size: 64}\nloss: {edge_wieght: 0.1}\n")
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "teacher.yaml: unknown key(s) loss.edge_wieght; allowed here: edge_weight" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_occau_evaluate_checks_every_folds_checkpoints_first(tmp_path: Path, capsys) -> None:
    from occau.cli import main

    (tmp_path / "t1.safetensors").write_bytes(b"")
    code = main(["evaluate", "--method", f"t=teacher:{tmp_path}/t{{fold}}.safetensors", "--folds", "1,2",
                 "--out", str(tmp_path / "eval")])
    assert code == 2 and f"{tmp_path}/t2.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


# ------------------------------------------------------------------------------------------------ reuse and resume
def test_recipe_changes_name_what_trains_differently_and_ignore_where_files_are() -> None:
    base = load_config(None, ["stage=student", "optim.epochs=2", "init.mae=a.safetensors", "data.cache_dir=x"])
    moved = load_config(None, ["stage=student", "optim.epochs=2", "init.mae=/elsewhere/a.safetensors",
                               "data.cache_dir=y", "trainer.devices=4"])
    longer = load_config(None, ["stage=student", "optim.epochs=6", "optim.layer_decay=1.0", "init.mae=a.safetensors"])
    assert recipe_changes(base, moved) == []
    assert recipe_changes(base, longer) == ["optim.epochs: 2 -> 6"]  # layer_decay 1.0 is the default: no change


def test_a_stage_trained_with_another_recipe_is_refused_not_reused(monkeypatch, tmp_path: Path) -> None:
    """A preset edited since a stage was trained (here: more epochs): the benchmark names the folder and the change
    and stops; the same recipe is reused without training; nothing is deleted."""
    old = load_config(None, ["stage=teacher", "optim.epochs=2"])
    folder = tmp_path / "teacher_occaug"
    folder.mkdir()
    save_config(old, folder / "config.yaml")
    (folder / "exported.json").write_text('{"teacher_occaug": "w.safetensors"}')
    monkeypatch.setattr(benchmark, "train_stage", lambda *a, **k: pytest.fail("a finished stage was trained again"))
    assert benchmark._trained(folder, old, "t", log=lambda m: None) == {"teacher_occaug": Path("w.safetensors")}
    new = load_config(None, ["stage=teacher", "optim.epochs=6"])
    with pytest.raises(RecipeChangedError, match=r"teacher_occaug: trained with another recipe .*optim.epochs: 2 -> 6"):
        benchmark._trained(folder, new, "t", log=lambda m: None)
    assert (folder / "exported.json").is_file() and (folder / "config.yaml").is_file()


def test_a_fold_is_evaluated_again_only_when_what_it_scores_changed(monkeypatch, tmp_path: Path) -> None:
    calls = []
    monkeypatch.setattr(benchmark, "_trained", lambda out_dir, config, *a, **k: {
        n: out_dir / f"{n}.safetensors" for n in (list(config.loss.distillation()) if config.stage == "student"
                                                  else [config.name])})
    monkeypatch.setattr(benchmark, "evaluate_fold", lambda specs, data, conditions, *a, **k: calls.append(
        list(conditions)) or {"fold": 1, "results": {}, "references": {}, "timings": {}})
    smoke = load_bench_config("smoke")
    run = lambda bench: benchmark.run_fold(bench, 1, tmp_path, tmp_path / "mae.safetensors", log=lambda m: None)
    run(smoke)
    run(smoke)  # unchanged: reused
    run(load_bench_config("smoke", ["eval.device=cpu", "eval.batch_size=7"]))  # where it runs: reused
    assert len(calls) == 1
    run(load_bench_config("smoke", ["conditions=[clean, patch50]"]))
    assert calls[-1] == ["clean", "patch50"] and len(calls) == 2
    (tmp_path / "fold1" / "evaluated_with.json").unlink()  # a fold evaluated before the file existed: reused
    run(smoke)
    assert len(calls) == 2


def test_run_times_keep_a_killed_invocation_up_to_its_last_progress_line(tmp_path: Path) -> None:
    """An invocation killed mid-run (a session's end) still counts in run_times.json up to its last log line, and the
    next invocation is appended after it, not over it."""
    (tmp_path / "run_times.json").write_text(json.dumps({"invocations_s": [100.0]}))
    lines: list[str] = []
    killed = RunTimes(tmp_path, log=lines.append)
    time.sleep(0.15)
    killed.timed(lines.append)("fold 1: student done")  # ... and the process dies here
    recorded = json.loads((tmp_path / "run_times.json").read_text())["invocations_s"]
    assert lines == ["fold 1: student done"]
    assert recorded[0] == 100.0 and len(recorded) == 2 and recorded[1] >= 0.1
    resumed = RunTimes(tmp_path, log=lines.append).update()
    assert resumed[:2] == recorded and len(resumed) == 3
