"""Pictures of the results: the frame with face box, landmarks and the covered region tinted, beside a panel of AU
bars; for a video, the same as a video plus a plot of AU probabilities over time.

Bars are coloured by what the model could see: green when the AU's region was visible (>= 50 %), grey-orange when it
was mostly covered, so a reader does not mistake a guess for an observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from occau.aus import au_name

if TYPE_CHECKING:
    from occau.inference.face_job import FaceJob
    from occau.inference.inputs import Frame, Source

PANEL_W = 230
ROW_H = 16
FONT = cv2.FONT_HERSHEY_SIMPLEX
VISIBLE_BGR = (80, 180, 60)
HIDDEN_BGR = (90, 140, 200)
COVER_BGR = np.array([40, 40, 230], dtype=np.float32)  # red tint over covered pixels
BOX_BGR = {False: (60, 220, 60), True: (0, 165, 255)}  # detected / reused from an earlier frame


def panel_height(num_aus: int, faces: int) -> int:
    return faces * (num_aus + 2) * ROW_H + 6


def tint_covered(image: np.ndarray, jobs: Sequence[FaceJob], alpha: float = 0.5) -> np.ndarray:
    """Warp each face's covered crop pixels back to the picture and tint them."""
    out = image.astype(np.float32)
    h, w = image.shape[:2]
    for job in jobs:
        back = cv2.warpAffine(job.covered.astype(np.uint8) * 255, job.matrix, (w, h),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0) > 0
        out[back] = (1 - alpha) * out[back] + alpha * COVER_BGR
    return out.astype(np.uint8)


def draw_faces(image: np.ndarray, jobs: Sequence[FaceJob]) -> np.ndarray:
    out = tint_covered(image, jobs)
    lw = max(1, round(max(image.shape[:2]) / 400))
    for job in jobs:
        x0, y0, x1, y1 = (round(v) for v in job.face.detection.box)
        color = BOX_BGR[job.face.tracked]
        cv2.rectangle(out, (x0, y0), (x1, y1), color, lw, cv2.LINE_AA)
        for x, y in job.face.detection.landmarks5:
            cv2.circle(out, (round(x), round(y)), lw + 1, (255, 255, 0), -1, cv2.LINE_AA)
        cv2.putText(out, f"face {job.face.face_id}", (x0, max(12, y0 - 4)), FONT, 0.4 * lw, color, lw, cv2.LINE_AA)
    return out


def draw_panel(jobs: Sequence[FaceJob], aus: Sequence[int], threshold: float, faces: int, height: int) -> np.ndarray:
    """(height, PANEL_W, 3) white panel: per face, one bar per AU (length = probability), threshold tick."""
    panel = np.full((height, PANEL_W, 3), 255, dtype=np.uint8)
    x_bar, w_bar = 48, PANEL_W - 100
    y = 4
    for job in list(jobs)[:faces]:
        r = job.row
        head = f"face {r['face_id']}  visible {100 * r['visible_fraction']:.0f}%  ({r['occlusion']})"
        cv2.putText(panel, head, (4, y + ROW_H - 4), FONT, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        y += ROW_H
        for au in aus:
            name = au_name(au)
            p, vis = float(r[name]), float(r[f"{name}_visible"])
            color = VISIBLE_BGR if vis >= 0.5 else HIDDEN_BGR
            cv2.putText(panel, name, (4, y + ROW_H - 4), FONT, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.rectangle(panel, (x_bar, y + 3), (x_bar + w_bar, y + ROW_H - 3), (225, 225, 225), -1)
            cv2.rectangle(panel, (x_bar, y + 3), (x_bar + round(p * w_bar), y + ROW_H - 3), color, -1)
            tick = x_bar + round(threshold * w_bar)
            cv2.line(panel, (tick, y + 1), (tick, y + ROW_H - 1), (0, 0, 0), 1)
            cv2.putText(panel, f"{p:.2f} v{100 * vis:.0f}", (x_bar + w_bar + 3, y + ROW_H - 4), FONT, 0.32,
                        (0, 0, 0), 1, cv2.LINE_AA)
            y += ROW_H
        y += ROW_H
    return panel


def render(image: np.ndarray, jobs: Sequence[FaceJob], aus: Sequence[int], threshold: float,
           faces: int | None = None) -> np.ndarray:
    """The overlay picture: drawn frame on the left, AU panel on the right (BGR uint8)."""
    faces = max(1, len(jobs)) if faces is None else faces
    height = max(image.shape[0], panel_height(len(aus), faces))
    canvas = np.full((height, image.shape[1] + PANEL_W, 3), 255, dtype=np.uint8)
    canvas[: image.shape[0], : image.shape[1]] = draw_faces(image, jobs)
    canvas[:, image.shape[1] :] = draw_panel(jobs, aus, threshold, faces, height)
    return canvas


class OverlaySink:
    """Where one input's pictures go: a PNG for an image; an MP4 (streamed) and an AU plot for a video."""

    VIDEO_FACES = 2  # panel rows reserved per video frame, so every frame has the same size

    def __init__(self, source: Source, folder: Path, aus: Sequence[int], threshold: float) -> None:
        self.source, self.folder, self.aus, self.threshold = source, folder, list(aus), threshold
        self.stem = Path(source.name).stem if source.path is not None else source.name
        self.video: cv2.VideoWriter | None = None
        self.rows: list[dict[str, Any]] = []
        self.fps = 25.0

    @classmethod
    def for_source(cls, source: Source, folder: str | Path, aus: Sequence[int], threshold: float) -> OverlaySink:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(source, folder, aus, threshold)

    def add(self, frame: Frame, jobs: Sequence[FaceJob]) -> None:
        if self.source.kind != "video":
            cv2.imwrite(str(self.folder / f"{self.stem}_overlay.png"), render(frame.image, jobs, self.aus,
                                                                              self.threshold))
            return
        self.rows += [j.row for j in jobs]
        if frame.index > 0 and frame.timestamp > 0:
            self.fps = frame.index / frame.timestamp
        canvas = render(frame.image, jobs, self.aus, self.threshold, faces=self.VIDEO_FACES)
        if self.video is None:
            path = self.folder / f"{self.stem}_overlay.mp4"
            self.video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                         (canvas.shape[1], canvas.shape[0]))
        self.video.write(canvas)

    def close(self) -> None:
        if self.video is not None:
            self.video.release()
        if self.rows:
            plot_timeseries(self.rows, self.aus, self.folder / f"{self.stem}_aus.png", self.threshold,
                            title=self.source.name)


def plot_timeseries(rows: Sequence[dict[str, Any]], aus: Sequence[int], path: Path, threshold: float = 0.5,
                    title: str = "") -> Path:
    """AU probabilities over time, one panel per face id; faint where the AU's region was mostly covered."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    face_ids = sorted({r["face_id"] for r in rows})[:4]
    fig = Figure(figsize=(9, 2.6 * len(face_ids) + 0.6))
    axes = fig.subplots(len(face_ids), 1, squeeze=False, sharex=True)
    cmap = colormaps["tab20"]
    for ax, fid in zip(axes[:, 0], face_ids):
        mine = [r for r in rows if r["face_id"] == fid]
        t = np.array([r["timestamp"] if np.isfinite(r["timestamp"]) else r["frame"] for r in mine])
        for k, au in enumerate(aus):
            name = au_name(au)
            p = np.array([r[name] for r in mine])
            seen = np.array([r[f"{name}_visible"] >= 0.5 for r in mine])
            ax.plot(t, np.where(seen, p, np.nan), color=cmap(k % 20), lw=1.2, label=name)
            ax.plot(t, np.where(seen, np.nan, p), color=cmap(k % 20), lw=0.8, alpha=0.35, ls=":")
        ax.plot(t, [r["visible_fraction"] for r in mine], color="k", lw=1.0, ls="--", label="visible")
        ax.axhline(threshold, color="grey", lw=0.6)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"face {fid}")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].legend(ncol=7, fontsize=6, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(title, fontsize=8, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
