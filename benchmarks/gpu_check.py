"""The first thing to run on a new GPU machine: every stage, every method and ``occau detect``, on the GPU, in minutes.

    python benchmarks/gpu_check.py --out runs/gpu_check                  # on the GPU, precision: auto (bf16-mixed)
    python benchmarks/gpu_check.py --out runs/gpu_check --device cpu --max-steps 2   # the same path on a CPU

It runs the smoke-sized SynthFACS benchmark with every stage on the device at ``trainer.precision`` (default ``auto``,
which is what every real-data preset uses: bf16-mixed where the GPU supports it), evaluates every registered method
there (fp32 and the training precision's autocast), then ``occau detect`` on a short video made from scikit-image's
astronaut photograph with the smoke student, in fp32 (the model inline, then in its own thread: ``--overlap``) and
bf16. ``OUT/gpu_check.json`` holds per-stage wall time and peak memory (GPU: ``torch.cuda.max_memory_allocated``;
CPU: the process's peak RSS so far), the detector's faces per second each way, and the largest fp32-vs-bf16
difference of any AU probability. It exits 1 if any step fails, after writing
what finished. A modern GPU finishes in well under 5 minutes; most of it is making the SynthFACS smoke faces.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import traceback
from pathlib import Path

import lightning as L
import numpy as np
import torch


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


class StageProfiler(L.Callback):
    """Wall time, precision and peak memory of every training stage the benchmark runs."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.stages, self._start = device, {}, 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        reset_peak(self.device)
        self._start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        config = pl_module.config
        self.stages[f"fold {config.data.fold}: {config.name or config.stage}"] = {
            "seconds": round(time.perf_counter() - self._start, 2),
            "peak_memory_mb": round(peak_memory_mb(self.device), 1),
            "precision": str(trainer.precision),
            "device": str(pl_module.device),
            "steps": int(trainer.global_step),
        }


def moving_face_video(path: Path, frames: int = 24, size: int = 256) -> Path:
    """A short video of a real face drifting sideways (scikit-image's astronaut, public domain)."""
    import cv2

    try:
        from skimage import data
    except ImportError:
        raise SystemExit("gpu_check: the detect step needs scikit-image (pip install -e '.[dev]')") from None
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    for i in range(frames):
        writer.write(cv2.resize(np.roll(photo, 3 * i, axis=1), (size, size), interpolation=cv2.INTER_AREA))
    writer.release()
    return path


def check_detect(student: Path, video: Path, device: torch.device) -> dict:
    """``occau detect`` on the video with the smoke student: fp32 with the model inline and in its own thread
    (``--overlap``: off by default on a CPU, on by default on a GPU, measured here on this machine), and bf16:
    speed, memory, agreement."""
    from occau.inference import Detector

    runs, probs = {}, {}
    for name, precision, overlap in (("fp32", "fp32", False), ("fp32_overlap", "fp32", True),
                                     ("bf16", "bf16", None)):
        detector = Detector(student, device=str(device), precision=precision)
        reset_peak(device)
        start = time.perf_counter()
        df = detector.detect(video, batch_size=8, overlap=overlap)
        seconds = time.perf_counter() - start
        columns = [c for c in df.columns if c.startswith("AU") and c[2:].isdigit()]
        probs[name] = df[columns].to_numpy(float)
        runs[name] = {"rows": len(df), "seconds": round(seconds, 3), "faces_per_s": round(len(df) / seconds, 1),
                      "peak_memory_mb": round(peak_memory_mb(device), 1)}
    if len({p.shape for p in probs.values()}) != 1 or not len(probs["fp32"]):
        raise RuntimeError(f"detect: rows x AUs differ between runs: { {k: p.shape for k, p in probs.items()} }")
    if not np.array_equal(probs["fp32"], probs["fp32_overlap"]):
        raise RuntimeError("detect: the model in its own thread gave other probabilities than inline")
    runs["max_abs_prob_diff_bf16_vs_fp32"] = float(np.abs(probs["bf16"] - probs["fp32"]).max())
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (the smoke run, the video, gpu_check.json)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1, ... or cpu (default cuda)")
    parser.add_argument("--precision", default="auto", help="trainer.precision of every stage (default auto)")
    parser.add_argument("--max-steps", type=int, default=-1, help="cap every stage's optimiser steps (default: none)")
    args = parser.parse_args(argv)

    from occau.benchmark import load_bench_config, run_benchmark
    from occau.evaluation.environment import machine_info, software_info
    from occau.training.run import resolve_precision

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --device cpu for the CPU path", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    autocast = {"bf16-mixed": "bf16", "16-mixed": "fp16"}.get(resolve_precision(args.precision), "fp32")
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    devices = [device.index or 0] if device.type == "cuda" else 1
    report: dict = {"device": str(device), "precision": args.precision, "software": software_info(),
                    "machine": machine_info(), "stages": {}, "evaluation": {}, "detect": {}, "failed": None}
    profiler = StageProfiler(device)
    start = time.perf_counter()
    try:
        for precision in dict.fromkeys(("fp32", autocast)):  # evaluate every method in fp32 and in the autocast
            bench = load_bench_config("smoke", [f"trainer.accelerator={accelerator}", f"trainer.devices={devices}",
                                                f"trainer.precision={args.precision}",
                                                f"trainer.max_steps={args.max_steps}", f"eval.device={device}",
                                                f"eval.precision={precision}"])
            reset_peak(device)
            t0 = time.perf_counter()
            report_dir = run_benchmark(bench, out / "smoke" if precision == "fp32" else out / f"smoke_{precision}",
                                       log=lambda message: print(f"[gpu_check] {message}", flush=True),
                                       callbacks=[profiler])
            report["stages"] = profiler.stages
            results = json.loads((report_dir / "results.json").read_text())
            report["evaluation"][precision] = {
                "seconds_incl_training": round(time.perf_counter() - t0, 2),
                "peak_memory_mb": round(peak_memory_mb(device), 1),
                "f1_patch50": {m: round(r["patch50"]["f1_mean"], 4) for m, r in results["results"].items()},
                "ms_per_face": {m: round(t["ms_per_face"], 3) for m, t in results["timings"].items()},
            }
            if precision == "fp32":  # the autocast pass reuses the trained stages: copy them over, not retrain
                _reuse_stages(out / "smoke", out / f"smoke_{autocast}")
        video = moving_face_video(out / "moving_face.avi")
        student = out / "smoke" / "fold1" / "student" / "student.safetensors"
        report["detect"] = check_detect(student, video, device)
    except Exception:  # noqa: BLE001 - every failure is reported with what finished before it
        report["failed"] = traceback.format_exc()
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("stages", "detect", "total_seconds")}, indent=1))
    if report["failed"]:
        print(f"gpu_check: FAILED\n{report['failed']}", file=sys.stderr)
        return 1
    print(f"gpu_check: every stage, method and detect ran on {device}; {out / 'gpu_check.json'}")
    return 0


def _reuse_stages(trained: Path, target: Path) -> None:
    """Copy a finished smoke run's trained stages (not its evaluation) so a second evaluation skips training."""
    import shutil

    if target.exists():
        return
    shutil.copytree(trained, target, ignore=shutil.ignore_patterns("fold_results.json", "report"))


if __name__ == "__main__":
    sys.exit(main())
