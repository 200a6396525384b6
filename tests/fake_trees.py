"""Small trees laid out like the providers' BP4D and DISFA downloads, for tests of the real-data path.

Labels are the ``data_prep`` fixture's made-up raw label files (the real formats); frames are the astronaut photograph
(skimage, public domain) shifted by ``SHIFT`` px per frame, so every frame has a real face and its position encodes
the frame index. BP4D frames are JPEG files named like the download; DISFA frames are an MJPG video.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SIDE, SHIFT = 160, 4  # frame side, horizontal shift per frame (px)


def frame(t: int, blank: bool = False) -> np.ndarray:
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:340, 70:390]
    img = np.roll(cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA), SHIFT * t, axis=1)
    return np.full_like(img, 127) if blank else img


def write_video(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (SIDE, SIDE))
    for t in range(n):
        writer.write(frame(t))
    writer.release()


def write_download(
    root: Path,
    reference_dir: Path,
    bp4d: tuple[str, ...] = (),
    disfa: tuple[str, ...] = (),
    blank: dict[tuple[str, str], tuple[int, ...]] | None = None,
) -> Path:
    """``root/BP4D`` and ``root/DISFA`` for the given subjects; ``blank`` lists (subject, task) -> frame positions
    drawn without a face."""
    raw = json.loads((reference_dir / "data_prep" / "raw_inputs.json").read_text())
    for rel, text in raw.items():
        if any(s in rel for s in bp4d + disfa):
            path = root / rel.removeprefix("data/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for csv in (root / "BP4D/AUCoding/AU_OCC").glob("*.csv"):
        subject, task = csv.stem.split("_")
        frames = [int(line.split(",")[0]) for line in csv.read_text().splitlines()[1:]]
        for t, number in enumerate(frames):
            path = root / "BP4D/BP4D-training" / subject / task / f"{number:04d}.jpg"  # zero-padded as shipped
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), frame(t, t in (blank or {}).get((subject, task), ())))
    for sn in disfa:
        n = len((root / f"DISFA/ActionUnit_Labels/{sn}/{sn}_au1.txt").read_text().splitlines())
        write_video(root / f"DISFA/Videos_LeftCamera/LeftVideo{sn}_comp.avi", n + 1)  # one extra frame, unused
    return root
