"""ME-GraphAU teacher against the official code (fixture ``megraphau_head``: resnet18, 12 AUs) plus invariants.

The fixture keeps every weight after the backbone and the official backbone output (see its ``derive.py``): the
official tensors are compared from ``global_linear`` on. The backbone is torchvision's ResNet; its weights here are a
seeded stand-in that only fills the state_dict, and the comparisons bypass it with an identity backbone.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from occau.checkpoints.io import CheckpointError
from occau.checkpoints.megraphau import init_stage2_from_stage1
from occau.models.megraphau import BACKBONES, FGG, GatedGCN, MEGraphAU, MEGraphAUConfig, create_backbone
from occau.models.megraphau.backbones import SwinTokens
from occau.models.megraphau.graph import normalize_adjacency, pair_end, pair_start, topk_adjacency
from occau.models.outputs import AUOutput

CL_TOL = {"atol": 2e-5, "rtol": 1e-5}
FEAT_TOL = {"atol": 5e-4, "rtol": 1e-4}
SMALL = MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=2)
GEM_EDGES = 24  # the fixture keeps GEM maps for sample 0, edges 0..23


def _float(sd: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}  # fixture stores fp16 values


@pytest.fixture(scope="module")
def ref(reference_dir):
    d = reference_dir / "megraphau_head"
    manifest = json.loads((d / "manifest.json").read_text())
    head = _float(load_file(d / "mefl_head_weights.safetensors"))
    torch.manual_seed(0)
    stand_in = {f"backbone.{k}": v for k, v in create_backbone("resnet18").state_dict().items()}
    mefl = {**stand_in, **head}
    anfl_extra = _float(load_file(d / "anfl_extra_weights.safetensors"))
    loaded = manifest["stage1_to_stage2_transfer"]["loaded_from_stage1"]
    anfl = {**{k: mefl[k] for k in loaded}, **anfl_extra}
    io = load_file(d / "io.safetensors")
    tokens = io["mefl_eval_backbone_out"]
    return {"manifest": manifest, "io": io, "head": head, "mefl": mefl, "anfl": anfl, "tokens": tokens}


def _from_tokens(model: MEGraphAU) -> MEGraphAU:
    """A copy that reads backbone tokens (B, T, Cin) instead of images: the official backbone output goes in."""
    model = copy.deepcopy(model)
    model.backbone = nn.Identity()
    return model


@pytest.fixture(scope="module")
def mefl(ref) -> MEGraphAU:
    model = MEGraphAU(SMALL)
    model.load_state_dict(ref["mefl"], strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def anfl(ref) -> MEGraphAU:
    model = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=1, neighbor_num=4))
    model.load_state_dict(ref["anfl"], strict=True)
    return model.eval()


def test_state_dict_keys_are_the_official_ones(ref, mefl, anfl):
    assert {k for k in mefl.state_dict() if not k.startswith("backbone.")} == set(ref["head"])
    assert set(anfl.state_dict()) == set(ref["anfl"])
    tops = list(
        dict.fromkeys(
            ".".join(k.split(".")[:2]) if k.startswith("head") else k.split(".")[0] for k in mefl.state_dict()
        )
    )
    assert tops == [
        "backbone",
        "global_linear",
        "head.sc",
        "head.class_linears",
        "head.edge_extractor",
        "head.gnn",
        "head.edge_fc",
    ]


def test_mefl_eval_matches_official(ref, mefl):
    io = ref["io"]
    with torch.no_grad():
        f = _from_tokens(mefl).forward_intermediates(ref["tokens"])
    torch.testing.assert_close(f.probs, io["mefl_eval_cl"], **CL_TOL)
    for got, name in [
        (f.edge_logits, "mefl_eval_cl_edge"),
        (f.global_tokens, "mefl_eval_global_linear_out"),
        (f.f_u, "mefl_eval_f_u"),
        (f.edge_maps[:1, :GEM_EDGES], "mefl_eval_gem_out"),
        (f.f_v, "mefl_eval_gnn_in_nodes"),
        (f.f_e, "mefl_eval_gnn_in_edges"),
        (f.nodes, "mefl_eval_gnn_out_nodes"),
        (f.edges, "mefl_eval_gnn_out_edges"),
    ]:
        torch.testing.assert_close(got, io[name], **FEAT_TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_mefl_forward_returns_au_output(ref, mefl):
    with torch.no_grad():
        out = _from_tokens(mefl)(ref["tokens"])
    assert isinstance(out, AUOutput)
    torch.testing.assert_close(out.probs, ref["io"]["mefl_eval_cl"], **CL_TOL)
    torch.testing.assert_close(out.edge_logits, ref["io"]["mefl_eval_cl_edge"], **FEAT_TOL)
    torch.testing.assert_close(out.node_features, ref["io"]["mefl_eval_gnn_out_nodes"], **FEAT_TOL)
    torch.testing.assert_close(out.edge_features, ref["io"]["mefl_eval_gnn_out_edges"], **FEAT_TOL)
    assert out.probs.min() >= 0 and out.probs.max() <= 1


def test_train_mode_uses_batch_statistics(ref, mefl):
    m = _from_tokens(mefl).train()
    with torch.no_grad():
        out = m(ref["tokens"])
    assert not torch.allclose(out.probs, ref["io"]["mefl_eval_cl"], atol=1e-3)


def test_anfl_eval_matches_official(ref, anfl):
    io = ref["io"]
    with torch.no_grad():
        f = _from_tokens(anfl).forward_intermediates(ref["tokens"])  # stage 1 and 2 share the backbone
    torch.testing.assert_close(f.probs, io["anfl_eval_cl"], **CL_TOL)
    torch.testing.assert_close(f.f_v, io["anfl_eval_gnn_in_nodes"], **FEAT_TOL)
    torch.testing.assert_close(f.nodes, io["anfl_eval_gnn_out_nodes"], **FEAT_TOL)
    assert f.edges is None and f.edge_logits is None


def test_stage1_to_stage2_transfer(ref):
    transfer = ref["manifest"]["stage1_to_stage2_transfer"]
    stage1 = {"module." + k: v for k, v in ref["anfl"].items()}  # as DataParallel saved it
    torch.manual_seed(1)
    model = MEGraphAU(SMALL)
    before = copy.deepcopy(model.state_dict())
    ignored = init_stage2_from_stage1(model, stage1)
    assert ignored == sorted(transfer["stage1_keys_ignored_by_stage2 (strict=False)"])
    after = model.state_dict()
    for k in transfer["loaded_from_stage1"]:
        assert torch.equal(after[k], ref["mefl"][k]), k
    kept = transfer["stage2_keys_not_in_stage1_checkpoint (keep stage-2 init)"]
    assert sorted(set(after) - set(transfer["loaded_from_stage1"])) == sorted(kept)
    for k in kept:
        assert torch.equal(after[k], before[k]), k
    # with the stage-2-only modules as the official run had them, the warm-started model is the reference
    model.load_state_dict({**after, **{k: ref["mefl"][k] for k in kept}})
    with torch.no_grad():
        probs = _from_tokens(model).eval()(ref["tokens"]).probs
    torch.testing.assert_close(probs, ref["io"]["mefl_eval_cl"], **CL_TOL)


def test_stage1_transfer_rejects_wrong_sources(ref):
    model = MEGraphAU(SMALL)
    with pytest.raises(CheckpointError, match="stage-2-only key present"):
        init_stage2_from_stage1(model, ref["mefl"])  # a stage-2 file is not a stage-1 file
    typo = dict(ref["anfl"])
    typo["head.sc_"] = typo.pop("head.sc")
    with pytest.raises(CheckpointError, match=r"unexpected: head\.sc_[\s\S]*missing: head\.sc"):
        init_stage2_from_stage1(model, typo)


def test_edge_index_convention():
    x = torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1)  # (B=2, N=3, C=1)
    e = torch.arange(9)
    assert torch.equal(pair_end(x)[:, :, 0], x[:, e // 3, 0])  # end node j = e // N
    assert torch.equal(pair_start(x)[:, :, 0], x[:, e % 3, 0])  # start node k = e % N


def test_gated_gcn_gate_and_state():
    torch.manual_seed(0)
    gnn = GatedGCN(dim=8, num_nodes=5)
    edges = torch.randn(3, 25, 8) * 3
    g = gnn.gate(edges)  # (B, N, N, C)
    torch.testing.assert_close(g.sum(dim=2), torch.ones(3, 5, 8))  # sums to 1 over start nodes k
    assert (g > 0).all()
    assert sorted(gnn.state_dict()) == sorted(
        [f"{m}{layer}.weight" for layer in (1, 2) for m in "UVABE"]
        + [
            f"bn{t}{layer}.{p}"
            for layer in (1, 2)
            for t in "ve"
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        ]
    )  # no incidence matrices: nothing device- or N-bound beyond the parameters
    nodes, out = gnn.eval()(torch.randn(3, 5, 8), edges)
    assert nodes.shape == (3, 5, 8) and out.shape == (3, 25, 8) and (nodes >= 0).all()


def test_fgg_adjacency_by_hand():
    nodes = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]])  # dots: row 0 -> [1, .9, 0]
    adj = topk_adjacency(nodes, k=2)
    assert torch.equal(adj[0], torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    a = normalize_adjacency(adj)[0]
    assert a.dtype == torch.float32
    torch.testing.assert_close(a[2, 1], torch.tensor(1 / 2))  # 1/sqrt(d_2 d_1) = 1/sqrt(2*2)
    torch.testing.assert_close(a[0, 0], torch.tensor(1 / 2))
    ties = topk_adjacency(torch.ones(1, 4, 3), k=2)  # ties keep every tied neighbour, as upstream
    assert ties.sum() == 16
    with pytest.raises(ValueError, match="neighbor_num"):
        FGG(8, 3, neighbor_num=4)


@pytest.mark.parametrize("stage", [1, 2])
def test_any_number_of_aus_and_input_size(stage):
    torch.manual_seed(0)
    model = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=5, stage=stage, neighbor_num=2, img_size=256))
    model.train()
    with torch.no_grad():
        f = model.forward_intermediates(torch.randn(2, 3, 256, 256))
    assert f.tokens.shape == (2, 64, 512)  # (256 / 32)^2 tokens
    assert f.f_u.shape == (2, 5, 64, 128) and f.nodes.shape == (2, 5, 128)
    assert ((f.probs >= 0) & (f.probs <= 1)).all()
    if stage == 2:
        assert f.edges.shape == (2, 25, 128) and f.edge_logits.shape == (2, 25, 4)


def test_backbone_table_matches_modules():
    for name, spec in BACKBONES.items():
        with torch.device("meta"):
            b = create_backbone(name)
        cin = b.num_features if spec.family == "swin" else b.layer4[-1].conv1.in_channels
        assert cin == spec.in_channels, name
        assert spec.node_dim == cin // (2 if spec.family == "swin" else 4), name
        assert not any(k.startswith(("fc.", "head.")) for k in b.state_dict()), name


def test_swin_backbone_tokens():
    torch.manual_seed(0)
    b = SwinTokens(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)).eval()  # small, same code path
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        tokens = b(x)
        grid = b.norm(b.layers(b.patch_embed(x)))  # (B, H, W, C) after the final norm
    assert tokens.shape == (1, 49, 128)
    torch.testing.assert_close(tokens[0, 7 * 2 + 3], grid[0, 2, 3])  # row-major token order
    assert not torch.allclose(tokens[0, 0], tokens[0, 1])


@pytest.mark.parametrize("stage", [1, 2])
def test_forward_creates_no_tensor_on_a_fixed_device(stage):
    """The official MEFL only runs on CUDA (its incidence matrices live on the CPU unless moved); here every tensor
    follows the input, checked on the meta device."""
    with torch.device("meta"):
        model = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=4, stage=stage, neighbor_num=2))
    out = model.to("meta")(torch.empty(2, 3, 64, 64, device="meta"))
    assert out.probs.device.type == "meta" and out.probs.shape == (2, 4)
