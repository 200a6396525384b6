"""How well ``--occlusion auto`` (``occau.inference.occlusion_estimate``) finds covered tokens.

Faces: the scikit-image astronaut (a real photograph, aligned with the occau front end) and SynthFACS faces (the
synthetic training renders). Each is occluded by the protocol's painted occluders and bands (``occau.occlusion``),
whose pixel masks give the true token masks. Reported per condition: token precision and recall of the estimate
(inside the face region, where the estimate looks), and for ``clean`` the share of face tokens wrongly called covered.

    python benchmarks/detect_occlusion.py --out docs/benchmarks/detect_occlusion.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CONDITIONS = ("clean", "mask", "sunglasses", "hand", "eyes", "mouth", "lower", "square25")
FILLS = ("black", "texture")


def astronaut_crop(size: int) -> np.ndarray:
    import cv2
    from skimage import data

    from occau.faces.align import align_face
    from occau.faces.face_detector import FaceDetector

    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    face = FaceDetector().detect_one(bgr)
    crop, _ = align_face(bgr, face.landmarks5, size)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def synth_crops(size: int, n: int) -> list[np.ndarray]:
    from occau.data.synthfacs import GENERATED_AUS, render_face
    from occau.data.synthfacs.identity import sample_identity

    rng = np.random.default_rng(0)
    return [render_face(sample_identity(np.random.default_rng(i)), rng.uniform(0, 2, len(GENERATED_AUS)), size)
            for i in range(n)]


def measure(faces: dict[str, np.ndarray], patch: int) -> list[dict]:
    from occau.inference.occlusion_estimate import estimate_token_mask, skin_prior
    from occau.occlusion import occlude
    from occau.occlusion.tokens import token_coverage

    rows = []
    for cond in CONDITIONS:
        for fill in FILLS if cond not in ("clean", "mask", "sunglasses", "hand") else ("-",):
            tp = fp = fn = face_tokens = 0
            for key, crop in faces.items():
                occ = occlude(crop, cond, sample_key=key, seed=0, patch_size=patch,
                              fill="black" if fill == "-" else fill)
                inside = token_coverage(skin_prior(crop.shape[0]) > 0, patch) > 0  # where the estimate looks
                est = estimate_token_mask(occ.image, patch) & inside
                truth = occ.token_mask & inside
                tp += int((est & truth).sum())
                fp += int((est & ~truth).sum())
                fn += int((~est & truth).sum())
                face_tokens += int(inside.sum())
            rows.append({"condition": cond, "fill": fill, "faces": len(faces), "true": tp + fn, "found": tp + fp,
                             "precision": tp / (tp + fp) if tp + fp else float("nan"),
                             "recall": tp / (tp + fn) if tp + fn else float("nan"),
                             "false_cover": fp / face_tokens})
    return rows


def to_markdown(title: str, rows: list[dict]) -> str:
    lines = [f"### {title}", "", ("| condition | fill | true covered tokens | estimated | precision | recall | "
             "wrongly covered (share of face tokens) |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['condition']} | {r['fill']} | {r['true']} | {r['found']} | {r['precision']:.2f} | "
                     f"{r['recall']:.2f} | {r['false_cover']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--synth", type=int, default=24, help="number of SynthFACS faces")
    parser.add_argument("--out", default=None, help="write the tables to this Markdown file")
    args = parser.parse_args()
    text = (to_markdown("astronaut (real photograph, 1 face)", measure({"astronaut": astronaut_crop(args.size)},
                                                                      args.patch))
            + "\n" + to_markdown(f"SynthFACS ({args.synth} faces)",
                                 measure({f"synth{i}": c for i, c in enumerate(synth_crops(args.size, args.synth))},
                                         args.patch)))
    header = (f"# `--occlusion auto`: token precision / recall\n\nCrop {args.size} px, patch {args.patch} px. "
              f"Reproduce: `python benchmarks/detect_occlusion.py --size {args.size} --patch {args.patch} "
              f"--synth {args.synth}`.\n\n")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(header + text)


if __name__ == "__main__":
    main()
