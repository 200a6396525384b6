"""Speed of ``occau detect`` on CPU: faces per second end to end and per stage, for ViT-S/16 and ViT-B/16 students
at 0 %, 50 % and 75 % occlusion, against the teacher alone (ME-GraphAU ResNet-50, MEFL) and
MAE-reconstruct-then-teacher with the same encoder, all in one run; plus peak memory while streaming a video.

Random weights (timing does not depend on them). Occlusion = the protocol's ``patchN`` (random token cells).
Speed-ups measured: batching, channels-last (teacher), bf16 autocast, int8 dynamic quantisation of Linear layers
(with the largest change of any AU probability against fp32, to say whether accuracy holds).

    python benchmarks/detect_speed.py --out docs/benchmarks            # the whole run (several minutes)
    python benchmarks/detect_speed.py --memory-frames 150 --size 640x360   # the streaming-memory part only
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ENCODERS = ("vit_s16", "vit_b16")
OCCLUSIONS = (0.0, 0.5, 0.75)
AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]


def configs(name: str):
    from occau.models.mae import MAEConfig
    from occau.models.student import STUDENT_CONFIGS, StudentConfig

    if name == "vit_s16":  # ViT-S/16 encoder, default MAE decoder (512 x 8), student to the ResNet-50 width
        return MAEConfig(embed_dim=384, depth=12, num_heads=6), StudentConfig(embed_dim=384, num_patches=196,
                                                                              num_aus=12, dim=512, num_heads=8)
    return MAEConfig(), STUDENT_CONFIGS["student_vitb_bp4d"]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernels
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def token_masks(batch: int, tokens: int, ratio: float, seed: int = 0) -> torch.Tensor:
    """(B, L) bool: ``round(ratio * L)`` random cells per face, as the protocol's patchN conditions."""
    g = torch.Generator().manual_seed(seed)
    n = round(ratio * tokens)
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    for b in range(batch):
        mask[b, torch.randperm(tokens, generator=g)[:n]] = True
    return mask


def astronaut_frame(width: int, height: int) -> np.ndarray:
    """A ``width`` x ``height`` RGB frame with the astronaut photograph (one real face) in the middle."""
    import cv2
    from skimage import data

    face = data.astronaut()
    frame = np.full((height, width, 3), 90, np.uint8)
    side = min(height, width, 512)
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    y, x = (height - side) // 2, (width - side) // 2
    frame[y : y + side, x : x + side] = face
    return frame


def aligned_batch(batch: int) -> torch.Tensor:
    """(B, 3, 224, 224) normalised aligned astronaut crops."""
    import cv2

    from occau.data.transforms import to_model_input
    from occau.faces.align import align_face
    from occau.faces.face_detector import FaceDetector

    bgr = cv2.cvtColor(astronaut_frame(512, 512), cv2.COLOR_RGB2BGR)
    crop = cv2.cvtColor(align_face(bgr, FaceDetector().detect_one(bgr).landmarks5, 224)[0], cv2.COLOR_BGR2RGB)
    return to_model_input(np.repeat(crop[None], batch, axis=0))


# ---------------------------------------------------------------------------------------------- model stages
def bench_models(batch: int, repeats: int, log) -> list[dict]:
    from occau.models.mae import MaskedAutoencoderViT
    from occau.models.megraphau import MEGRAPHAU_CONFIGS, MEGraphAU
    from occau.models.student import LatentStudent

    x = aligned_batch(batch)
    rows: list[dict] = []

    def add(method: str, encoder: str, occ: float, variant: str, seconds: float, **extra) -> None:
        rows.append(dict(method=method, encoder=encoder, occlusion=occ, variant=variant, batch=batch,
                         ms_per_face=1000 * seconds / batch, **extra))
        log(f"{method:>14} {encoder:>8} occ={occ:.2f} {variant:<14} {1000 * seconds / batch:8.1f} ms/face")

    torch.manual_seed(0)
    teacher = MEGraphAU(MEGRAPHAU_CONFIGS["resnet50_bp4d"]).eval()
    with torch.inference_mode():
        ref_teacher = teacher(x).probs
        add("teacher", "resnet50", 0.0, "fp32", median_time(lambda: teacher(x), repeats))
        teacher_cl = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        add("teacher", "resnet50", 0.0, "channels_last",
            median_time(lambda: teacher_cl(x_cl), repeats))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            diff = (teacher(x).probs.float() - ref_teacher).abs().max().item()
            add("teacher", "resnet50", 0.0, "bf16", median_time(lambda: teacher(x), repeats), max_prob_diff=diff)
    t_teacher = min(r["ms_per_face"] for r in rows if r["method"] == "teacher" and r["variant"] != "bf16")

    for name in ENCODERS:
        mae_cfg, st_cfg = configs(name)
        torch.manual_seed(0)
        mae = MaskedAutoencoderViT(mae_cfg, decoder=True).eval()
        student = LatentStudent(st_cfg).eval()
        with torch.inference_mode():
            for occ in OCCLUSIONS:
                bench_occlusion(name, occ, mae, student, teacher, x, token_masks(batch, mae_cfg.num_patches, occ),
                                repeats, add)
    for r in rows:
        r["faces_per_s"] = 1000.0 / r["ms_per_face"]
    rows.append({"method": "teacher_best_ms", "ms_per_face": t_teacher})
    return rows


def bench_occlusion(name: str, occ: float, mae, student, teacher, x: torch.Tensor, mask: torch.Tensor, repeats: int,
                    add: Callable) -> None:
    """The student (encoder + head) and, if anything is covered, reconstruct-then-teacher, at one occlusion."""
    batch = x.shape[0]
    latents = mae.encode_visible(x, mask)
    t_enc = median_time(lambda: mae.encode_visible(x, mask), repeats)
    t_head = median_time(lambda: student(latents), repeats)
    ref = student(latents).probs
    add("student", name, occ, "fp32", t_enc + t_head, encoder_ms=1000 * t_enc / batch,
        head_ms=1000 * t_head / batch, head_over_encoder=t_head / t_enc)
    if occ == 0.5:  # the optimisations, at the headline occlusion
        t1 = median_time(lambda: student(mae.encode_visible(x[:1], mask[:1])), repeats)
        add("student", name, occ, "batch=1", t1 * batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            diff = (student(mae.encode_visible(x, mask)).probs.float() - ref).abs().max().item()
            t = median_time(lambda: student(mae.encode_visible(x, mask)), repeats)
        add("student", name, occ, "bf16", t, max_prob_diff=diff)
        q_mae, q_student = quantize(mae), quantize(student)
        q_lat = q_mae.encode_visible(x, mask)
        diff = (q_student(q_lat).probs - ref).abs().max().item()
        t_qenc = median_time(lambda: q_mae.encode_visible(x, mask), repeats)
        t_qhead = median_time(lambda: q_student(q_lat), repeats)
        add("student", name, occ, "int8-dynamic", t_qenc + t_qhead, max_prob_diff=diff,
            encoder_ms=1000 * t_qenc / batch, head_ms=1000 * t_qhead / batch)
    if occ > 0:
        t_rec = median_time(lambda: mae.reconstruct(x, mask), repeats)
        pasted, _ = mae.reconstruct(x, mask)
        t_rt = median_time(lambda: teacher(pasted), repeats)
        add("recon_teacher", name, occ, "fp32", t_rec + t_rt, mae_ms=1000 * t_rec / batch,
            teacher_ms=1000 * t_rt / batch)


def quantize(module: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantisation of every Linear (weights int8, activations quantised on the fly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), {torch.nn.Linear}, dtype=torch.qint8)


# ---------------------------------------------------------------------------------------------- end to end
def painted_frame(frame: np.ndarray, condition: str) -> np.ndarray:
    """The frame with a protocol condition painted on its face, as a user's picture of a covered face would be: the
    aligned crop is occluded (``occau.occlusion.occlude``, black fill) and the covered pixels warped back."""
    import cv2

    from occau.faces.align import align_face
    from occau.faces.face_detector import FaceDetector
    from occau.occlusion import occlude

    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    crop, matrix = align_face(bgr, FaceDetector().detect_one(bgr).landmarks5, 224)
    result = occlude(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), condition, sample_key="speed", seed=0)
    h, w = frame.shape[:2]
    back = {"dsize": (w, h), "flags": cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, "borderValue": 0}
    covered = cv2.warpAffine(result.pixel_mask.astype(np.uint8), matrix, **back).astype(bool)
    painted = cv2.warpAffine(result.image, matrix, **back)
    out = frame.copy()
    out[covered] = painted[covered]
    return out


# (occlusion painted on the frame, --occlusion mode): clean with each estimate, then the protocol's surgical mask and
# hand found by the learnt estimate, as a user without masks runs it. Random black cells (patch50) are not used here:
# the face detector loses a face covered by them (FACE_FRONTEND.md), so 50 / 75 % are composed from the model table.
END_TO_END = (("clean", "none"), ("clean", "learnt"), ("clean", "colour"), ("mask", "learnt"), ("hand", "learnt"))


def onnx_twin(encoder, student, mae_cfg, st_cfg, log):
    """A Detector on ONNX Runtime over the same weights (``occau export onnx``), or None without the onnx extra."""
    from dataclasses import asdict

    from occau.checkpoints.io import save_checkpoint
    from occau.inference import Detector
    from occau.inference.onnx_student import MissingExtraError, export_onnx

    folder = Path(tempfile.mkdtemp())
    state = {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
             **{f"student.{k}": v for k, v in student.state_dict().items()}}
    from occau.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    meta = {"kind": "student", "model": asdict(st_cfg), "encoder": asdict(mae_cfg), "aus": AUS,
            "input_size": mae_cfg.img_size, "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "license": "random weights", "data": {"dataset": "random"}}
    try:
        path, diff = export_onnx(save_checkpoint(folder / "student.safetensors", state, meta), folder / "student.onnx")
    except MissingExtraError as err:
        log(f"onnx: skipped ({err})")
        return None
    log(f"onnx: exported, max |ONNX - PyTorch| {diff:.1e}")
    return Detector(path, runtime="onnx", device="cpu")


def bench_end_to_end(frames: int, batch: int, size: tuple[int, int], log) -> list[dict]:
    """``Detector.detect`` on real frames, clean or with a protocol condition painted on the face: per-stage seconds
    per face, and how many tokens the encoder saw."""
    from occau.inference import Detector
    from occau.models.mae import MaskedAutoencoderViT
    from occau.models.student import LatentStudent

    clean = astronaut_frame(*size)
    pictures = {c: clean if c == "clean" else painted_frame(clean, c) for c, _ in END_TO_END}
    rows = []
    for name in ENCODERS:
        mae_cfg, st_cfg = configs(name)
        torch.manual_seed(0)
        encoder, student = MaskedAutoencoderViT(mae_cfg, decoder=False), LatentStudent(st_cfg)
        runs = [(Detector.from_modules(encoder, student, {"aus": AUS}, device="cpu"), "torch", c, m)
                for c, m in END_TO_END]
        onnx_detector = onnx_twin(encoder, student, mae_cfg, st_cfg, log)
        if onnx_detector is not None:  # the same weights exported, clean, no estimate
            runs.append((onnx_detector, "onnx", "clean", "none"))
        for det, runtime, condition, mode in runs:
            frame = pictures[condition]
            det.detect([frame] * min(2, frames), batch_size=batch, occlusion=mode)  # warm-up
            det.times = type(det.times)()
            t0 = time.perf_counter()
            df = det.detect([frame] * frames, batch_size=batch, occlusion=mode)
            wall = time.perf_counter() - t0
            t = det.times.as_dict()
            per_face = {k: 1000 * v / max(1, t["faces"]) for k, v in t.items() if k not in ("frames", "faces")}
            seen = float(df.tokens_visible.mean()) / mae_cfg.num_patches if len(df) else float("nan")
            rows.append(dict(encoder=name, runtime=runtime, painted=condition, occlusion_mode=mode, tokens_seen=seen,
                             frames=frames,
                             faces=len(df), batch=batch, frame_size=f"{size[0]}x{size[1]}",
                             wall_ms_per_face=1000 * wall / max(1, len(df)), faces_per_s=len(df) / wall,
                             **{f"{k}_ms": v for k, v in per_face.items()}))
            log(f"end-to-end {name} {runtime} {condition} occlusion={mode}: {rows[-1]['faces_per_s']:.2f} faces/s, "
                f"{100 * seen:.0f} % of tokens seen, stages (ms/face) "
                + ", ".join(f"{k}={v:.1f}" for k, v in per_face.items()))
    return rows


# ---------------------------------------------------------------------------------------------- video
VIDEO_RUNS = ((1, False), (1, True), (5, False), (5, True))  # (detect_every, overlap)


def drifting_video(path: Path, frames: int, size: tuple[int, int], fps: float = 25.0) -> Path:
    """A 640x360-style MJPG video of the astronaut drifting smoothly left and right (a triangle wave, 20 px either
    way, 80 frames a period), so optical flow can follow her between detections."""
    import cv2

    base = cv2.cvtColor(astronaut_frame(*size), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        writer.write(np.roll(base, abs(i % 80 - 40) - 20, axis=1))
    writer.release()
    return path


def bench_video(frames: int, batch: int, size: tuple[int, int], log) -> list[dict]:
    """``Detector.detect`` on a video, one face per frame: the detector on every frame or every 5th (optical flow in
    between), the model inline or in its own thread (``overlap``)."""
    from occau.inference import Detector
    from occau.models.mae import MaskedAutoencoderViT
    from occau.models.student import LatentStudent

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = drifting_video(Path(tmp) / "drift.avi", frames, size)
        for name in ENCODERS:
            mae_cfg, st_cfg = configs(name)
            torch.manual_seed(0)
            det = Detector.from_modules(MaskedAutoencoderViT(mae_cfg, decoder=False), LatentStudent(st_cfg),
                                        {"aus": AUS}, device="cpu")
            det.detect([astronaut_frame(*size)] * 2, batch_size=batch)  # warm-up
            for detect_every, overlap in VIDEO_RUNS:
                det.times = type(det.times)()
                t0 = time.perf_counter()
                df = det.detect(video, batch_size=batch, detect_every=detect_every, overlap=overlap)
                wall = time.perf_counter() - t0
                t = det.times.as_dict()
                per_face = {k: 1000 * v / max(1, t["faces"]) for k, v in t.items() if k not in ("frames", "faces")}
                rows.append(dict(encoder=name, detect_every=detect_every, overlap=overlap, frames=frames,
                                 faces=len(df), tracked=int(df.tracked.sum()), batch=batch,
                                 frame_size=f"{size[0]}x{size[1]}", wall_ms_per_face=1000 * wall / max(1, len(df)),
                                 faces_per_s=len(df) / wall, **{f"{k}_ms": v for k, v in per_face.items()}))
                log(f"video {name} detect_every={detect_every} overlap={overlap}: {rows[-1]['faces_per_s']:.2f} "
                    f"faces/s, {rows[-1]['tracked']} of {len(df)} rows tracked, stages (ms/face) "
                    + ", ".join(f"{k}={v:.1f}" for k, v in per_face.items()))
    return rows


# ---------------------------------------------------------------------------------------------- memory
def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = float(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def memory_run(frames: int, size: tuple[int, int], encoder: str, fps: float = 25.0, skip_frames: int = 0) -> dict:
    """Stream a synthetic video of ``frames`` frames through ``Detector.detect`` (CSV out) and record RSS.
    ``skip_frames``: process one frame then skip this many (every frame is still decoded), so a long video can be
    measured whole on a CPU."""
    import cv2

    from occau.inference import Detector
    from occau.models.mae import MaskedAutoencoderViT
    from occau.models.student import LatentStudent

    torch.set_num_threads(1)
    mae_cfg, st_cfg = configs(encoder)
    det = Detector.from_modules(MaskedAutoencoderViT(mae_cfg, decoder=False), LatentStudent(st_cfg), {"aus": AUS},
                                device="cpu")
    base = cv2.cvtColor(astronaut_frame(*size), cv2.COLOR_RGB2BGR)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        for i in range(frames):  # the face drifts a little, so every frame is detected anew
            writer.write(np.roll(base, (i % 40) - 20, axis=1))
        writer.release()
        samples = []
        original = det._run_batch

        def sampled(jobs, batch_size):  # sample RSS after every model batch
            original(jobs, batch_size)
            samples.append((det.times.frames, *rss_mb()))

        det._run_batch = sampled
        rss_start = rss_mb()[0]
        t0 = time.perf_counter()
        df = det.detect(video, batch_size=16, out=Path(tmp) / "rows.csv", skip_frames=skip_frames)
        wall = time.perf_counter() - t0
    # What grows with the video's length: the rows kept for the returned DataFrame. Measure one row's cost.
    before = rss_mb()[0]
    rows = [dict(df.iloc[0]) | {"frame": i} for i in range(20000)]
    per_row_kb = (rss_mb()[0] - before) * 1024 / len(rows)
    del rows
    return {"encoder": encoder, "frames": frames, "skip_frames": skip_frames, "faces": len(df), "frame_size": f"{size[0]}x{size[1]}", "fps": fps,
                "wall_s": wall, "rss_after_load_mb": rss_start, "samples": samples, "peak_rss_mb": rss_mb()[1],
                "per_row_kb": per_row_kb}


# ---------------------------------------------------------------------------------------------- report
def summarise(models: list[dict], e2e: list[dict], video: list[dict], memory: dict, meta: dict) -> tuple[str, dict]:
    out = ["# `occau detect` speed on CPU", "",
           (f"Machine: {meta['machine']}; torch {meta['torch']}, {meta['threads']} thread(s); load average "
           f"{meta['load_before']} before, {meta['load_after']} after (2 cores shared with other jobs: expect noise)."),
           (f"Batch {meta['batch']}, median of {meta['repeats']} runs after a warm-up. Random weights. "
           f"Reproduce: `{meta['command']}`."), ""]
    targets = {}
    out += ["## Per face, model stages (224 px, patch 16)", "",
            ("| method | encoder | occlusion | variant | ms/face | faces/s | encoder ms | head ms | head/encoder | "
            "max prob diff vs fp32 |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for r in models:
        if "method" not in r or r["method"] == "teacher_best_ms":
            continue
        out.append(f"| {r['method']} | {r['encoder']} | {100 * r['occlusion']:.0f}% | {r['variant']} | "
                   f"{r['ms_per_face']:.1f} | {r['faces_per_s']:.2f} | {_cell(r, 'encoder_ms')} | "
                   f"{_cell(r, 'head_ms')} | {_cell(r, 'head_over_encoder', '{:.1%}')} | "
                   f"{_cell(r, 'max_prob_diff', '{:.1e}')} |")
    out += ["", "## Targets", ""]
    for name in ENCODERS:
        st = {r["occlusion"]: r for r in models if r.get("method") == "student" and r["encoder"] == name
              and r["variant"] == "fp32"}
        rec = {r["occlusion"]: r for r in models if r.get("method") == "recon_teacher" and r["encoder"] == name}
        speedup = rec[0.5]["ms_per_face"] / st[0.5]["ms_per_face"]
        ratios = {occ: st[occ]["head_over_encoder"] for occ in st}
        targets[name] = {"speedup_vs_recon_at_50": speedup, "head_over_encoder": ratios}
        ok = [f"{100 * o:.0f}%" for o, v in ratios.items() if v <= 0.15]
        verdict = "met" if len(ok) == len(ratios) else f"met at {', '.join(ok)} only" if ok else "NOT met"
        out.append(f"- {name}: at 50 % occlusion the student takes {st[0.5]['ms_per_face']:.1f} ms/face, "
                   f"reconstruct-then-teacher {rec[0.5]['ms_per_face']:.1f}: **{speedup:.1f}x** faster "
                   f"(target >= 2x: {'met' if speedup >= 2 else 'NOT met'}). Head / encoder time: "
                   + ", ".join(f"{v:.1%} at {100 * o:.0f}%" for o, v in ratios.items())
                   + f" (target <= 15%: {verdict}).")
    out += ["", ("## End to end (`Detector.detect` on a 640x360 frame with one real face: clean, or a protocol "
            "condition painted on the face and found by the occlusion estimate)"), "",
            ("| encoder | runtime | painted | occlusion mode | tokens seen | faces | faces/s | wall ms/face | decode | "
             "detection | alignment | occlusion estimate | encoder | head |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in e2e:
        out.append(f"| {r['encoder']} | {r['runtime']} | {r['painted']} | {r['occlusion_mode']} | "
                   f"{100 * r['tokens_seen']:.0f} % | "
                   f"{r['faces']} | {r['faces_per_s']:.2f} | {r['wall_ms_per_face']:.1f} | {r['decode_ms']:.1f} | "
                   f"{r['detection_ms']:.1f} | {r['alignment_ms']:.1f} | {r['occlusion_ms']:.1f} | "
                   f"{r['encoder_ms']:.1f} | {r['head_ms']:.1f} |")
    out += ["", ("At 50 % / 75 % random cells (which the face detector does not survive when painted on the picture), end "
            "to end = decode + detection + alignment of the clean run + the student's encoder + head at that occlusion "
            "(first table, same run):"), ""]
    for r in e2e:
        if (r["runtime"], r["painted"], r["occlusion_mode"]) != ("torch", "clean", "none"):
            continue
        front = r["decode_ms"] + r["detection_ms"] + r["alignment_ms"]
        for occ in (0.5, 0.75):
            st = next(m for m in models if m.get("method") == "student" and m["encoder"] == r["encoder"]
                      and m["variant"] == "fp32" and m["occlusion"] == occ)
            total = front + st["ms_per_face"]
            out.append(f"- {r['encoder']} at {100 * occ:.0f}%: {front:.1f} + {st['ms_per_face']:.1f} = {total:.1f} "
                       f"ms/face, {1000 / total:.2f} faces/s (composed, not measured in one detect call)")
    if video:
        out += ["", (f"## End to end on a video ({video[0]['frame_size']}, {video[0]['frames']} frames, one face "
                "drifting; `--detect-every K`: the face detector on every K-th frame, optical flow in between; "
                "`overlap`: the model in its own thread)"), "",
                ("| encoder | detect every | overlap | faces | tracked | faces/s | wall ms/face | decode | detection | "
                 "tracking | alignment | encoder | head |"), "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in video:
            out.append(f"| {r['encoder']} | {r['detect_every']} | {'on' if r['overlap'] else 'off'} | {r['faces']} | "
                       f"{r['tracked']} | {r['faces_per_s']:.2f} | {r['wall_ms_per_face']:.1f} | {r['decode_ms']:.1f} | "
                       f"{r['detection_ms']:.1f} | {r['tracking_ms']:.1f} | {r['alignment_ms']:.1f} | "
                       f"{r['encoder_ms']:.1f} | {r['head_ms']:.1f} |")
        out += ["", ("With overlap the stage columns are summed over both threads, so they add up to more than the "
                "wall time.")]
    if memory:
        per_frame_mb = memory["per_row_kb"] / 1024
        ten_min = int(600 * memory["fps"])
        steady = max(s[2] for s in memory["samples"])
        projected = steady + per_frame_mb * (ten_min - memory["frames"])
        targets["memory_10min_mb"] = projected
        first, last = memory["samples"][0], memory["samples"][-1]
        out += ["", "## Memory while streaming a video", "",
                (f"Measured: a {memory['frame_size']} MJPG video of {memory['frames']} frames "
                f"({memory['frames'] / memory['fps']:.0f} s at {memory['fps']:.0f} fps), {memory['encoder']} student, "
                f"batch 16, CSV written row by row, in a fresh process: RSS {memory['rss_after_load_mb']:.0f} MB "
                f"after loading, {first[1]:.0f} MB after frame {first[0]}, {last[1]:.0f} MB after frame {last[0]}; "
                f"peak {memory['peak_rss_mb']:.0f} MB ({memory['wall_s']:.0f} s wall)."),
                (f"Extrapolated, not measured: frames are decoded one at a time and only the returned rows grow with "
                f"the video's length, {memory['per_row_kb']:.2f} kB per face row (measured on 20 000 rows). A "
                f"10-minute video at {memory['fps']:.0f} fps ({ten_min} frames, one face) would peak at about "
                f"**{projected:.0f} MB** (target < 2048 MB: {'met' if projected < 2048 else 'NOT met'})."), ""]
    return "\n".join(out) + "\n", targets


def _cell(row: dict, key: str, fmt: str = "{:.1f}") -> str:
    return fmt.format(row[key]) if key in row else ""


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/benchmarks", help="folder for detect_speed.md and detect_speed.json")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--e2e-frames", type=int, default=8)
    p.add_argument("--video-frames", type=int, default=200,
                   help="frames of the drifting-face video timed with --detect-every 1 / 5 and overlap off / on")
    p.add_argument("--memory-frames", type=int, default=150)
    p.add_argument("--memory-skip", type=int, default=0,
                   help="process one frame then skip this many (a 10-minute video: --memory-frames 15000 "
                        "--memory-skip 24, one face per second processed, every frame decoded)")
    p.add_argument("--memory-encoder", default="vit_b16", choices=ENCODERS)
    p.add_argument("--size", default="640x360", help="frame size for end to end and memory")
    p.add_argument("--memory-only", action="store_true", help="(internal) run only the memory part, print JSON")
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    if args.memory_only:
        print(json.dumps(memory_run(args.memory_frames, size, args.memory_encoder, skip_frames=args.memory_skip)))
        return

    def log(msg: str) -> None:
        print(msg, flush=True)

    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpu(s)".strip(),
                "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "repeats": args.repeats,
                "load_before": load_average(), "command": "python " + " ".join(sys.argv)}
    models = bench_models(args.batch, args.repeats, log)
    e2e = bench_end_to_end(args.e2e_frames, args.batch, size, log)
    video = bench_video(args.video_frames, args.batch, size, log) if args.video_frames > 0 else []
    memory = {}
    if args.memory_frames > 0:  # a fresh process, so its peak RSS is the streaming run's alone
        res = subprocess.run([sys.executable, __file__, "--memory-only", "--memory-frames", str(args.memory_frames),
                              "--memory-skip", str(args.memory_skip),
                              "--memory-encoder", args.memory_encoder, "--size", args.size],
                             capture_output=True, text=True, check=True)
        memory = json.loads(res.stdout.strip().splitlines()[-1])
        log(f"memory: {json.dumps({k: v for k, v in memory.items() if k != 'samples'})}")
    meta["load_after"] = load_average()
    text, targets = summarise(models, e2e, video, memory, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "detect_speed.md").write_text(text)
    (out / "detect_speed.json").write_text(json.dumps({"meta": meta, "models": models, "end_to_end": e2e, "video": video,
                                                           "memory": memory,
                                                           "targets": targets}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
