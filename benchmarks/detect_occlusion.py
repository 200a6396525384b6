"""How well an occlusion estimate (``occau.evaluation.occlusion_estimates``) finds the covered tokens of a face.

Any estimate by name: ``colour`` (the colour heuristic) or ``learnt`` (the occlusion estimator; ``--checkpoint``
picks weights other than the shipped ones). Faces, and whether each estimate ever saw them:

- ``cameraman``: a real photograph (grey scale, profile) that neither estimate was tuned, trained or selected on;
  the camera and glove already in the photograph (``data.photos.COVERED_BOXES``) are left out of the scores;
- ``grace_hopper``: a real photograph the colour estimate never saw; the shipped learnt estimator's epoch was
  selected on it (never trained on), so its learnt rows are optimistic;
- ``astronaut``: a real photograph; the colour estimate's thresholds were tuned on it and the learnt estimator was
  trained on it: how well each fits what it saw, not how well it generalises;
- ``synth``: SynthFACS identities drawn here, rendered at the crop size (the estimator trained on 30 other
  identities of SynthFACS's pretraining pool; the colour thresholds were tuned on 8 SynthFACS faces).

Each face is covered, ``--draws`` times with different random geometry, by every protocol condition (the benchmark's
own: painted regions with two fills, and the mask / sunglasses / hand occluders) and by every occluder kind of
``occau.occlusion.occluder_kinds``, each labelled with its split (``training``: the estimator learnt from it;
``held-out`` and ``protocol``: it never saw them). Scored per row: token precision and recall inside the face region
(the template's expected skin, where the colour estimate looks), and the share of face tokens wrongly called
covered (on ``clean``, the false-positive rate a user pays on every uncovered face).

    python benchmarks/detect_occlusion.py --estimate learnt --out docs/benchmarks/detect_occlusion_learnt.md
    python benchmarks/detect_occlusion.py --estimate colour --out docs/benchmarks/detect_occlusion_colour.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

REGION_CONDITIONS = ("eyes", "mouth", "lower", "upper", "square25", "patch50")
FILLS = ("black", "texture")


def synth_crops(size: int, n: int) -> list[np.ndarray]:
    from occau.data.synthfacs import GENERATED_AUS, render_face
    from occau.data.synthfacs.identity import sample_identity

    rng = np.random.default_rng(0)
    return [render_face(sample_identity(np.random.default_rng(10_000 + i)), rng.uniform(0, 2, len(GENERATED_AUS)),
                        size) for i in range(n)]


PHOTOS = ("cameraman", "grace_hopper", "astronaut")


def face_sets(size: int, synth: int) -> dict[str, dict[str, np.ndarray]]:
    from occau.data.photos import aligned_photo

    return {**{name: {name: aligned_photo(name, size)} for name in PHOTOS},
            "synth": {f"synth{i}": c for i, c in enumerate(synth_crops(size, synth))}}


def unscored(faces: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(S, S) bool pixels of each photograph that a real occluder already covers (left out of the scores)."""
    from occau.data.photos import COVERED_BOXES, covered_in_photo

    return {key: covered_in_photo(key, crop.shape[0]) for key, crop in faces.items() if key in COVERED_BOXES}


def occlusion_rows() -> list[tuple[str, str, str]]:
    """(occluder, fill, split) of every row: clean, the protocol's regions and occluders, then every kind."""
    from occau.occlusion.occluder_kinds import OCCLUDER_KINDS, PROTOCOL_KINDS, split_of

    rows = [("clean", "-", "-")]
    rows += [(cond, fill, "protocol region") for cond in REGION_CONDITIONS for fill in FILLS]
    rows += [(kind, "-", "protocol") for kind in PROTOCOL_KINDS]
    rows += [(kind, "-", split_of(kind)) for kind in OCCLUDER_KINDS if kind not in PROTOCOL_KINDS]
    return rows


def covered(crop: np.ndarray, occluder: str, fill: str, key: str, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(occluded crop, true (L,) token mask) for one face, occluder and draw key."""
    from occau.occlusion import CONDITIONS, occlude
    from occau.occlusion.occluder_kinds import OCCLUDER_KINDS, paste
    from occau.occlusion.seeding import sample_rng
    from occau.occlusion.tokens import token_mask_from_pixels

    if occluder in CONDITIONS:
        result = occlude(crop, occluder, sample_key=key, seed=0, patch_size=patch, fill="black" if fill == "-" else fill)
        return result.image, result.token_mask
    image, pixels = paste(crop, OCCLUDER_KINDS[occluder](crop.shape[0], sample_rng(0, occluder, key)))
    return image, token_mask_from_pixels(pixels, patch)


def measure(faces: dict[str, np.ndarray], patch: int, estimate: str = "colour", checkpoint: str | None = None,
            draws: int = 4, ignore: dict[str, np.ndarray] | None = None) -> list[dict]:
    """One row per occluder (and fill): token precision / recall of ``estimate`` inside the face region, pooled
    over the faces and ``draws`` random draws of each occluder, and the share of face tokens wrongly covered.
    ``ignore``: per face, (S, S) pixels left out of the scores (tokens at least half in them)."""
    from occau.data.transforms import to_model_input
    from occau.evaluation.occlusion_estimates import open_estimate
    from occau.occlusion.colour_estimate import skin_prior
    from occau.occlusion.tokens import token_coverage

    estimator = open_estimate(estimate, checkpoint)
    rows = []
    for occluder, fill, split in occlusion_rows():
        tp = fp = fn = face_tokens = 0
        for key, crop in faces.items():
            inside = token_coverage(skin_prior(crop.shape[0]) > 0, patch) > 0  # (L,) where the scores look
            if ignore and key in ignore:
                inside &= token_coverage(ignore[key], patch) < 0.5
            pairs = [covered(crop, occluder, fill, f"{key}/{d}", patch) for d in range(draws)]
            images = to_model_input(np.stack([image for image, _ in pairs]))  # (D, 3, S, S)
            judged = estimator(images, patch).numpy() & inside  # (D, L)
            truth = np.stack([mask for _, mask in pairs]) & inside
            tp += int((judged & truth).sum())
            fp += int((judged & ~truth).sum())
            fn += int((~judged & truth).sum())
            face_tokens += int(inside.sum()) * draws
        rows.append({"occluder": occluder, "fill": fill, "split": split, "faces": len(faces), "draws": draws,
                     "true": tp + fn, "found": tp + fp,
                     "precision": tp / (tp + fp) if tp + fp else float("nan"),
                     "recall": tp / (tp + fn) if tp + fn else float("nan"),
                     "false_cover": fp / face_tokens})
    return rows


def time_estimate(estimate: str, checkpoint: str | None, size: int, patch: int, repeats: int = 20) -> float:
    """Median ms per face of the estimate on one aligned crop at a time (as ``occau detect`` runs it)."""
    import torch

    from occau.evaluation.occlusion_estimates import open_estimate

    estimator = open_estimate(estimate, checkpoint)
    image = torch.randn(1, 3, size, size)
    estimator(image, patch)  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimator(image, patch)
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def to_markdown(title: str, rows: list[dict]) -> str:
    lines = [f"### {title}", "", "| occluder | fill | split | true covered tokens | estimated | precision | recall | "
             "wrongly covered (share of face tokens) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['occluder']} | {r['fill']} | {r['split']} | {r['true']} | {r['found']} | "
                     f"{r['precision']:.2f} | {r['recall']:.2f} | {r['false_cover']:.3f} |")
    return "\n".join(lines) + "\n"


TITLES = {"cameraman": "cameraman (real photograph, never tuned, trained or selected on; his camera left out)",
          "grace_hopper": "Grace Hopper (real photograph: the learnt estimator's epoch was selected on it)",
          "astronaut": "astronaut (real photograph: the colour thresholds were tuned on it, the estimator trained on it)",
          "synth": "SynthFACS ({n} identities drawn here, never trained on)"}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--estimate", default="colour", help="colour | learnt")
    parser.add_argument("--checkpoint", default=None, help="learnt estimator weights (default: the shipped ones)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--synth", type=int, default=12, help="number of SynthFACS faces")
    parser.add_argument("--draws", type=int, default=4, help="random draws of every occluder per face")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the tables to this Markdown file (and .json beside it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {name: measure(faces, args.patch, args.estimate, args.checkpoint, args.draws, unscored(faces))
               for name, faces in face_sets(args.size, args.synth).items()}
    ms = time_estimate(args.estimate, args.checkpoint, args.size, args.patch)
    text = "\n".join(to_markdown(TITLES[name].format(n=args.synth), rows) for name, rows in results.items())
    command = (f"python benchmarks/detect_occlusion.py --estimate {args.estimate} --size {args.size} --patch "
               f"{args.patch} --synth {args.synth} --draws {args.draws} --threads {args.threads}"
               + (f" --checkpoint {args.checkpoint}" if args.checkpoint else ""))
    header = (f"# Occlusion estimate `{args.estimate}`: token precision / recall\n\nCrop {args.size} px, patch "
              f"{args.patch} px, {args.draws} draws of every occluder per face; {ms:.1f} ms per face on "
              f"{args.threads} threads (one crop at a time). Reproduce: `{command}`.\n\n")
    print(header + text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + text)
        report = {"command": command, "estimate": args.estimate, "ms_per_face": ms, "tables": results}
        if args.estimate == "learnt":  # which weights were measured, so they can be shipped with these numbers
            from occau.evaluation.occlusion_estimates import LearntEstimate

            weights = LearntEstimate(args.checkpoint).checkpoint
            report["checkpoint_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        out.with_suffix(".json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
