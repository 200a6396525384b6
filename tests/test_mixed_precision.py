"""What GPU users run, checked on a CPU: every model, loss, stage and method under mixed precision, and a device audit.

Every preset says ``precision: auto``, which is bf16-mixed on nearly every GPU; our machines have none. Two stand-ins:

- **Autocast on the CPU.** ``torch.autocast("cpu", bf16/fp16)`` runs the same ops in half precision that CUDA's does
  (linear, matmul, conv, attention), so a dtype clash between an autocast output and an fp32 parameter fails here as
  it fails there. Lightning turns ``16-mixed`` into bf16 on a CPU, so fp16 is tested with ``torch.autocast`` directly.
- **The device audit.** Models and inputs stay on the CPU while the *default* device is ``meta``: a tensor made inside
  without an explicit ``device=`` lands on meta, and the first op that mixes it with the inputs fails, just as a tensor
  made on the CPU fails on CUDA. (Stricter than CUDA, which lets 0-dim CPU tensors mix.) Unlike running everything on
  meta, data-dependent steps (the visible-token count) still run.

Tolerances are stated where they are used; they are those of 8 (bf16) and 11 (fp16) significant bits through a few
layers, measured on the fixtures with margin, not chosen to pass.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from occau.benchmark import load_bench_config, run_benchmark
from occau.checkpoints.io import load_checkpoint
from occau.data.relations import relation_labels, relation_valid
from occau.evaluation.methods import ReconstructThenTeacher
from occau.losses.distill import DistillationConfig, DistillationLoss
from occau.losses.edge import edge_loss
from occau.losses.wa import WeightedAsymmetricLoss
from occau.models.mae import MAEConfig, MaskedAutoencoderViT, encoder_only
from occau.models.megraphau import MEGraphAU, MEGraphAUConfig
from occau.models.student import EncoderStudent, LatentStudent, StudentConfig
from occau.training.config import load_config
from occau.training.probe import grid_features
from occau.training.stages import STAGES

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}
TINY_MAE = MAEConfig(img_size=64, patch_size=8, embed_dim=48, depth=2, num_heads=2, decoder_embed_dim=16,
                     decoder_depth=1, decoder_num_heads=2)


@contextlib.contextmanager
def default_device_elsewhere():
    """The device audit: tensors made without ``device=`` go to meta while the real ones stay on the CPU."""
    with torch.device("meta"):
        yield


def _tiny_models(readout: str = "grid"):
    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(TINY_MAE)
    teacher = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=2, img_size=64)).eval()
    student = LatentStudent(StudentConfig(embed_dim=48, num_patches=64, dim=128, num_heads=4, readout=readout,
                                          spatial_maps=2))
    student.init_from_teacher(teacher.state_dict())  # the student's graph head is the teacher's, as in training
    return mae, teacher, EncoderStudent(encoder_only(mae), student)


def _faces(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 64, 64, generator=g), torch.rand(n, 64, generator=g) < 0.5


def _labels(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 12, generator=g) > 0.5).float(), torch.rand(n, 12, generator=g) > 0.2


# ---------------------------------------------------------------- models against fp32 and the official tensors
@pytest.mark.parametrize("precision, atol", [("bf16", 0.08), ("fp16", 0.01)])
def test_mae_encoder_under_autocast_stays_near_the_official_latents(reference_dir, precision, atol):
    """mae_small (ViT width 192, official weights and latents): nothing occluded, so encode_visible must give the
    official spatial latent. |latent| reaches ~4; bf16 keeps 8 bits (rel. 4e-3) through 2 blocks."""
    weights = load_file(reference_dir / "mae_small" / "weights.safetensors")
    io = load_file(reference_dir / "mae_small" / "io.safetensors")
    model = MaskedAutoencoderViT(MAEConfig(embed_dim=192, depth=2, num_heads=3, decoder_embed_dim=128,
                                           decoder_depth=1, decoder_num_heads=4))
    model.load_state_dict(weights)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=HALF[precision]):
        latents = model.encode_visible(io["imgs"], torch.zeros(2, 196, dtype=torch.bool))
        half_occluded = model.reconstruct(io["imgs"], torch.arange(196).expand(2, -1) % 2 == 0)[0]
    assert torch.isfinite(latents.tokens).all() and torch.isfinite(half_occluded).all()
    torch.testing.assert_close(latents.tokens.float(), io["latent_r000_spatial"], atol=atol, rtol=0)


@pytest.mark.parametrize("precision, atol", [("bf16", 0.02), ("fp16", 0.005)])
def test_teacher_under_autocast_stays_near_the_official_probabilities(reference_dir, precision, atol):
    """ME-GraphAU stage 2 from the official backbone output (megraphau_head fixture) to the AU probabilities."""
    from torch import nn

    d = reference_dir / "megraphau_head"
    head = {k: v.float() for k, v in load_file(d / "mefl_head_weights.safetensors").items()}
    model = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=2))
    model.load_state_dict({**{f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}, **head})
    model.backbone = nn.Identity()
    model.eval()
    io = load_file(d / "io.safetensors")
    with torch.no_grad(), torch.autocast("cpu", dtype=HALF[precision]):
        out = model(io["mefl_eval_backbone_out"])
    assert out.probs.dtype == torch.float32  # the cosine classifier's normalisation runs in fp32
    torch.testing.assert_close(out.probs, io["mefl_eval_cl"], atol=atol, rtol=0)


@pytest.mark.parametrize("readout", ["grid", "set"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_student_under_autocast_is_finite_and_near_fp32(readout, precision):
    """Every student output (probabilities, KD features, edge logits) under autocast vs fp32: probabilities within
    0.02, features within 3 % of their scale. The crash users met was here: the grid readout's scatter."""
    _, _, model = _tiny_models(readout)
    model.eval()
    images, token_mask = _faces()
    with torch.no_grad():
        full = model(images, token_mask)
        with torch.autocast("cpu", dtype=HALF[precision]):
            half = model(images, token_mask)
    for field in ("probs", "node_features", "edge_features", "edge_logits", "node_inputs", "edge_inputs"):
        got, want = getattr(half, field).float(), getattr(full, field)
        assert torch.isfinite(got).all(), field
        scale = 0.02 if field == "probs" else 0.03 * float(want.abs().max())
        torch.testing.assert_close(got, want, atol=scale, rtol=0, msg=lambda m, f=field: f"{f}: {m}")


# ---------------------------------------------------------------- losses
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_wa_loss_on_half_precision_scores_equals_fp32_and_stays_finite(reference_dir, precision):
    """Scores arrive in half precision: the loss promotes them (fp16 has no 1e-8, so log(max(x, eps)) would be -inf
    at a score of 0). Compared with the official value on the same rounded scores, and at exact 0 and 1."""
    ref = load_file(reference_dir / "wa_loss" / "io.safetensors")
    weight = ref["weight"].float()
    x = ref["x"].to(HALF[precision]).requires_grad_(True)
    loss = WeightedAsymmetricLoss(weight=weight)(x, ref["y"])
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(x.grad.float()).all()
    expected = WeightedAsymmetricLoss(weight=weight)(x.detach().float(), ref["y"])
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-5)
    edges = torch.tensor([[0.0, 1.0, 0.0, 1.0]], dtype=HALF[precision], requires_grad=True)
    extreme = WeightedAsymmetricLoss()(edges, torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    extreme.backward()
    assert torch.isfinite(extreme) and torch.isfinite(edges.grad.float()).all()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("distance", ["mse", "cosine"])
def test_distillation_under_autocast_is_finite_and_near_fp32(precision, distance):
    """The student's whole objective (WA, node and edge KD, edge-logit KL, relation CE) from half-precision outputs:
    within 2 % of the fp32 objective, finite gradients for every student parameter."""
    _, teacher, model = _tiny_models()
    images, token_mask = _faces()
    labels, label_mask = _labels()
    with torch.no_grad():
        target = teacher(images)
    loss = DistillationLoss(DistillationConfig(edge_logits=1.0, relation=0.5, feature_distance=distance),
                            weight=torch.linspace(0.5, 1.5, 12))
    reference = loss(model(images, token_mask), target, labels, label_mask)["total"]
    with torch.autocast("cpu", dtype=HALF[precision]):
        terms = loss(model(images, token_mask), target, labels, label_mask)
    terms["total"].backward()
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in terms.values())
    torch.testing.assert_close(terms["total"], reference.detach(), atol=0, rtol=0.02)
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------- the device audit
def test_device_audit_mae_reconstruct_teacher_and_students():
    """Every forward path made of what may run on a GPU: MAE pretraining, encode_visible, the reconstruct baseline,
    both student readouts, the probe's feature grid."""
    mae, teacher, grid_student = _tiny_models("grid")
    set_student = _tiny_models("set")[2]
    images, token_mask = _faces()
    with default_device_elsewhere():
        loss, _, _ = mae(images, mask_ratio=0.75)
        latents = mae.encode_visible(images, token_mask)
        pasted = ReconstructThenTeacher("recon", mae, teacher)(images, token_mask)["recon"]
        outputs = [grid_student(images, token_mask), set_student(images, token_mask)]
        cells = grid_features(mae, images, token_mask)
    for tensor in (loss, latents.tokens, pasted, cells, *(o.probs for o in outputs), *(o.edge_logits for o in outputs)):
        assert tensor.device.type == "cpu" and torch.isfinite(tensor).all()


def test_device_audit_every_loss():
    _, teacher, model = _tiny_models()
    images, token_mask = _faces()
    labels, label_mask = _labels()
    out, target = model(images, token_mask), teacher(images)
    weight = torch.linspace(0.5, 1.5, 12)
    losses = [DistillationLoss(DistillationConfig(edge_logits=1.0, relation=0.5, feature_distance=d, kd_features=k),
                               weight=weight) for d in ("mse", "cosine") for k in ("graph_output", "graph_input")]
    wa = WeightedAsymmetricLoss(weight)  # built where the modules are built: on the host, then moved with them
    with default_device_elsewhere():
        totals = [loss(out, target, labels, label_mask)["total"] for loss in losses]
        totals.append(wa(target.probs, labels, label_mask))
        totals.append(edge_loss(target.edge_logits, relation_labels(labels * label_mask), relation_valid(label_mask)))
        sum(totals).backward()
    assert all(t.device.type == "cpu" and torch.isfinite(t) for t in totals)


# ---------------------------------------------------------------- every stage and method, as users run them
@pytest.fixture(scope="module")
def bf16_smoke(tmp_path_factory) -> tuple[Path, Path]:
    """The issue's command: the smoke benchmark with ``trainer.precision=bf16-mixed trainer.max_steps=2``, evaluated
    under bf16 autocast too: every stage (MAE with its probe, teacher stages 1 and 2, the occlusion-augmented teacher,
    the students with every KD variant, the no-pretraining control) and every registered method kind."""
    out = tmp_path_factory.mktemp("bench-bf16")
    bench = load_bench_config("smoke", ["trainer.precision=bf16-mixed", "trainer.max_steps=2", "eval.precision=bf16"])
    return out, run_benchmark(bench, out, log=lambda message: None)


def test_smoke_benchmark_under_bf16_mixed_writes_its_report(bf16_smoke):
    out, report = bf16_smoke
    results = json.loads((report / "results.json").read_text())
    assert {"teacher", "teacher_occaug", "mae_recon_teacher", "student", "student_no_kd", "student_node_kd",
            "student_edge_kd", "student_random_init"} == set(results["results"])
    for method, by_condition in results["results"].items():
        for cell in by_condition.values():
            assert np.isfinite(cell["f1_mean"]) and len(cell["f1_per_au"]) == 12, method
    assert {t["precision"] for t in results["timings"].values()} == {"bf16"}
    for stage in ("mae", "fold1/teacher_stage1", "fold1/teacher_stage2", "fold1/teacher_occaug", "fold1/student",
                  "fold1/student_control"):
        config = load_config(out / stage / "config.yaml")
        assert config.trainer.precision == "bf16-mixed"
        for path in json.loads((out / stage / "exported.json").read_text()).values():
            state, _ = load_checkpoint(path)
            assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path


STAGE_DIRS = ["mae", "fold1/teacher_stage1", "fold1/teacher_stage2", "fold1/teacher_occaug", "fold1/student",
              "fold1/student_control"]


def _stage_batch(out: Path, stage: str):
    """The stage's module and one training batch, built from the config the bf16 run saved."""
    config = load_config(out / stage / "config.yaml")
    module, datamodule = STAGES[config.stage].build(config)
    datamodule.setup("fit")
    if hasattr(module, "targets") and module.needs_teacher:
        module.targets.compute(module.teacher, datamodule.train_set.faces, progress=False)
    batch = next(iter(datamodule.train_dataloader()))
    return module.train(), batch


@pytest.mark.parametrize("stage", STAGE_DIRS)
def test_every_stage_trains_under_fp16_autocast(bf16_smoke, stage):
    """A training step of each stage under fp16 autocast (what ``16-mixed`` is on a GPU): a finite loss and finite
    gradients for every trainable parameter. (bf16-mixed: the benchmark above, through Lightning.)"""
    module, batch = _stage_batch(bf16_smoke[0], stage)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("stage", STAGE_DIRS)
def test_device_audit_every_stage_training_step(bf16_smoke, stage):
    """Each stage's training step, teacher-target lookup included, makes no tensor on a fixed device."""
    module, batch = _stage_batch(bf16_smoke[0], stage)
    with default_device_elsewhere():
        loss = module.training_step(batch, 0)
        loss.backward()
    assert loss.device.type == "cpu" and torch.isfinite(loss)


@pytest.fixture(scope="module")
def occlusion_stage(tmp_path_factory) -> Path:
    """The occlusion estimator's stage config at smoke size, saved where ``_stage_batch`` reads it."""
    from occau.training.config import save_config

    out = tmp_path_factory.mktemp("occlusion-stage")
    config = load_config("occlusion/synthfacs_photos.yaml", [
        f"data.cache_dir={out / 'cache'}", "data.preset=smoke", "data.batch_size=4", "model.arch=unet_w8",
        "loss.val_photo_repeats=2", "loss.photo_repeats=2"])
    (out / "occlusion").mkdir()
    save_config(config, out / "occlusion" / "config.yaml")
    return out


def test_occlusion_stage_trains_under_fp16_autocast_and_makes_no_tensor_on_a_fixed_device(occlusion_stage):
    module, batch = _stage_batch(occlusion_stage, "occlusion")
    with torch.autocast("cpu", dtype=torch.float16):
        loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
    module.zero_grad()
    with default_device_elsewhere():
        loss = module.training_step(batch, 0)
        loss.backward()
        module.eval()
        module.validation_step(batch, 0)  # the token threshold grid and counts
        share = module.model.covered_share(batch["image"], 8)
    assert loss.device.type == "cpu" and share.device.type == "cpu" and module.val_counts.sum() > 0


@pytest.mark.parametrize("precision, atol", [("bf16", 0.05), ("fp16", 0.01)])
def test_occlusion_estimate_under_autocast_stays_near_fp32(precision, atol):
    from occau.models.occlusion_net import OcclusionNet, OcclusionNetConfig
    from occau.runtime import autocast

    torch.manual_seed(0)
    net = OcclusionNet(OcclusionNetConfig(width=8)).eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference = net.covered_share(images, 16)
        with autocast(torch.device("cpu"), precision):
            half = net.covered_share(images, 16)
    assert half.dtype == torch.float32 and (half - reference).abs().max() < atol
