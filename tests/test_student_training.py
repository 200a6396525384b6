"""The student stage's parts: layer-wise lr decay, cached teacher targets, the no-pretraining control, the AU probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occau.data.transforms import to_model_input
from occau.models.mae import MAEConfig, MaskedAutoencoderViT, encoder_only
from occau.models.megraphau import MEGraphAU
from occau.models.megraphau.model import MEGraphAUConfig
from occau.models.student import EncoderStudent, LatentStudent, StudentConfig
from occau.training.config import OptimConfig
from occau.training.optim import configure_adamw
from occau.training.probe import fit_probe, grid_features
from occau.training.student_module import TeacherTargets

TINY_MAE = MAEConfig(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=2, decoder_embed_dim=16,
                     decoder_depth=1, decoder_num_heads=2)


def _bundle(layer_decay: float = 0.5) -> EncoderStudent:
    torch.manual_seed(0)
    encoder = MaskedAutoencoderViT(TINY_MAE, decoder=False)
    student = LatentStudent(StudentConfig(embed_dim=24, num_patches=16, num_aus=3, dim=16, num_heads=2, edge_depth=0))
    return EncoderStudent(encoder, student, layer_decay=layer_decay)


def test_layer_decay_scales_by_depth():
    scales = _bundle(0.5).lr_scales()
    assert scales["encoder.blocks.2.attn.qkv.weight"] == 0.5  # top block of 3: 0.5 ** (3 - 2)
    assert scales["encoder.blocks.0.mlp.fc1.weight"] == 0.125  # 0.5 ** 3
    assert scales["encoder.patch_embed.proj.weight"] == 0.0625  # 0.5 ** 4, below every block
    assert scales["encoder.cls_token"] == 0.0625
    assert scales["encoder.norm.weight"] == 1.0
    assert not any(k.startswith("student.") for k in scales)  # the head trains at the base lr


def test_optimizer_groups_carry_the_scaled_lr_and_hold_every_parameter_once():
    model = _bundle(0.5)
    opt = configure_adamw([model], OptimConfig(lr=1e-3, weight_decay=0.05, epochs=1), decay_1d=False,
                          stepping_batches=10)["optimizer"]
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)
    assert lr_of[id(model.encoder.blocks[0].mlp.fc1.weight)] == pytest.approx(1.25e-4)
    assert lr_of[id(model.student.readout.mix)] == pytest.approx(1e-3)
    assert wd_of[id(model.encoder.blocks[0].mlp.fc1.bias)] == 0.0 and wd_of[id(model.student.readout.mix)] == 0.05
    assert wd_of[id(model.student.readout.mask_embed)] == 0.0  # no decay on embeddings, as MAE fine-tuning


def test_bundle_refuses_a_decoder_or_another_grid():
    torch.manual_seed(0)
    student = LatentStudent(StudentConfig(embed_dim=24, num_patches=16, num_aus=3, dim=16, num_heads=2))
    with pytest.raises(ValueError, match="encoder-only"):
        EncoderStudent(MaskedAutoencoderViT(TINY_MAE), student)
    other = LatentStudent(StudentConfig(embed_dim=24, num_patches=64, num_aus=3, dim=16, num_heads=2))
    with pytest.raises(ValueError, match="L=64"):
        EncoderStudent(MaskedAutoencoderViT(TINY_MAE, decoder=False), other)
    with pytest.raises(ValueError, match="model.num_patches is 64"):
        StudentConfig(num_patches=64, num_aus=3, dim=16, num_heads=2).for_encoder(24, 16)
    assert StudentConfig(num_aus=3, dim=16, num_heads=2).for_encoder(24, 16) == student.config


def test_encoder_only_copy_is_independent():
    mae = MaskedAutoencoderViT(TINY_MAE)
    encoder = encoder_only(mae)
    assert not encoder.has_decoder
    with torch.no_grad():
        encoder.blocks[0].attn.qkv.weight.add_(1.0)
    assert not torch.equal(encoder.blocks[0].attn.qkv.weight, mae.blocks[0].attn.qkv.weight)


def test_cached_teacher_targets_equal_the_teacher_on_the_flipped_face():
    torch.manual_seed(0)
    teacher = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=3, stage=2, neighbor_num=2, img_size=32)).eval()
    rng = np.random.default_rng(0)
    faces = [{"image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)} for _ in range(3)]
    fields = ("probs", "node_features", "edge_features", "edge_logits", "node_inputs", "edge_inputs")
    targets = TeacherTargets(fields)
    targets.compute(teacher, faces, batch_size=2, progress=False)
    got = targets.lookup(torch.tensor([2, 0]), torch.tensor([True, False]))
    with torch.no_grad():
        want = teacher(torch.stack([to_model_input(np.ascontiguousarray(faces[2]["image"][:, ::-1])),
                                    to_model_input(faces[0]["image"])]))
    for field in fields:  # float16 storage
        torch.testing.assert_close(getattr(got, field), getattr(want, field), atol=2e-2, rtol=2e-3)


def test_probe_reads_a_planted_signal_and_not_noise():
    """AU k is on when channel k of cell k exceeds 0.5: the grid-linear probe fits it from 1600 faces, and a probe
    on features unrelated to the labels scores no better than predicting every AU present (F1 ~0.47 here)."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2000, 16, 8, generator=g)
    labels = torch.stack([(feats[:, k, k] > 0.5) for k in range(3)], 1).float()
    mask = torch.ones_like(labels, dtype=torch.bool)

    def score(x):
        w, b, mean, std = fit_probe(x[:1600], labels[:1600], mask[:1600], steps=300)
        probs = torch.sigmoid(((x[1600:] - mean) / std).flatten(1) @ w.T + b)
        pred = probs > 0.5
        y = labels[1600:].bool()
        tp = (pred & y).sum(0).float()
        return (2 * tp / (pred.sum(0) + y.sum(0))).mean().item()

    assert score(feats) > 0.8
    assert score(torch.randn(2000, 16, 8, generator=g)) < 0.45


def test_grid_features_put_latents_in_their_cells_and_zeros_elsewhere():
    torch.manual_seed(0)
    encoder = MaskedAutoencoderViT(TINY_MAE, decoder=False).eval()
    images = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, 5] = True
    mask[1, :8] = True
    grid = grid_features(encoder, images, mask)
    assert grid.shape == (2, 16, 24)
    assert (grid[0, 5] == 0).all() and (grid[1, :8] == 0).all() and (grid[1, 8:] != 0).any(-1).all()
    latents = encoder.encode_visible(images[1:], mask[1:])
    torch.testing.assert_close(grid[1, 8:], latents.tokens[0, 1:])  # raster order of the visible cells


STUDENT_STAGE = """
stage: student
name: student
data: {source: synthfacs, dataset: synth-bp4d, preset: smoke, batch_size: 16, eval_batch_size: 32, patch_size: 8,
       occlusion: {clean: 1, patch50: 1, mask: 1}}
model: {dim: 128, num_heads: 4, edge_depth: 0, readout: grid, spatial_maps: 2}
loss:
  kd: {feature_distance: cosine}
  variants: {student: {node: 1, edge: 1}, student_no_kd: no_kd, student_node_kd: {node: 1, edge: 0},
             student_edge_kd: {node: 0, edge: 1}}
optim: {lr: 1e-3, epochs: 1, finetune_blocks: 1, layer_decay: 0.75}
trainer: {accelerator: cpu, devices: 1, progress_bar: false, max_steps: 2, log_every_n_steps: 1}
"""


def test_student_stage_with_every_kd_variant_under_two_process_ddp(tmp_path, tmp_path_factory):
    """2 CPU processes (gloo), every configured KD variant side by side, the top encoder block fine-tuned: every
    trainable parameter gets a gradient on both ranks (DDP refuses otherwise) and the bundles export."""
    import subprocess
    import sys

    from occau.checkpoints.io import load_checkpoint
    from occau.checkpoints.mae import mae_meta
    from occau.checkpoints.megraphau import megraphau_meta
    from occau.checkpoints.io import save_checkpoint

    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(MAEConfig(img_size=64, patch_size=8, embed_dim=48, depth=2, num_heads=2,
                                         decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2))
    save_checkpoint(tmp_path / "mae.safetensors", mae.state_dict(), mae_meta(mae, "tiny", "test"))
    teacher_config = MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=2, img_size=64)
    teacher = MEGraphAU(teacher_config)
    save_checkpoint(tmp_path / "teacher.safetensors", teacher.state_dict(), megraphau_meta(teacher_config))
    (tmp_path / "student.yaml").write_text(STUDENT_STAGE)
    out = subprocess.run(
        [sys.executable, "-m", "occau", "train", str(tmp_path / "student.yaml"), "--out", str(tmp_path / "ddp"),
         f"data.cache_dir={tmp_path_factory.mktemp('cache')}", f"init.mae={tmp_path / 'mae.safetensors'}",
         f"init.teacher={tmp_path / 'teacher.safetensors'}", "trainer.devices=2", "trainer.strategy=ddp"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("student", "student_no_kd", "student_node_kd", "student_edge_kd"):
        state, meta = load_checkpoint(tmp_path / "ddp" / f"{name}.safetensors")
        assert meta["kind"] == "student" and meta["encoder_training"]["finetune_blocks"] == 1
        tuned, frozen = state["encoder.blocks.1.attn.qkv.weight"], state["encoder.blocks.0.attn.qkv.weight"]
        assert not torch.equal(tuned, mae.state_dict()["blocks.1.attn.qkv.weight"])  # the top block trained
        torch.testing.assert_close(frozen, mae.state_dict()["blocks.0.attn.qkv.weight"])  # the bottom did not
