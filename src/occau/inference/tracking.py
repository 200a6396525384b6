"""Face identities across video frames, and the reuse of the last good face when detection fails.

A hand or a microphone in front of the face makes detectors miss single frames; the face has not moved much, so the
last good detection (and with it the alignment transform) is reused for up to ``max_gap`` frames (FACE_FRONTEND.md
§3). Faces keep their ``face_id`` from frame to frame by box overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occau.faces.face_detector import FaceDetection


@dataclass(frozen=True)
class TrackedFace:
    face_id: int
    detection: FaceDetection
    tracked: bool  # True: not detected in this frame, the last good detection reused


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (4,) x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceTracker:
    """Greedy IoU matching to the previous frame's faces; new faces get the next free id."""

    def __init__(self, max_gap: int = 15, min_iou: float = 0.3) -> None:
        self.max_gap, self.min_iou = max_gap, min_iou
        self.last: list[TrackedFace] = []
        self.last_index: int | None = None  # frame of the last good detection
        self.next_id = 0

    def update(self, index: int, detections: list[FaceDetection]) -> list[TrackedFace]:
        if not detections:
            if self.last and self.last_index is not None and index - self.last_index <= self.max_gap:
                return [TrackedFace(f.face_id, f.detection, True) for f in self.last]
            return []
        pairs = sorted(((box_iou(d.box, f.detection.box), i, f.face_id) for i, d in enumerate(detections)
                        for f in self.last), reverse=True)
        ids: dict[int, int] = {}
        for iou, i, face_id in pairs:
            if iou >= self.min_iou and i not in ids and face_id not in ids.values():
                ids[i] = face_id
        faces = []
        for i, d in enumerate(detections):
            if i not in ids:
                ids[i], self.next_id = self.next_id, self.next_id + 1
            faces.append(TrackedFace(ids[i], d, False))
        self.next_id = max(self.next_id, max(ids.values()) + 1)
        self.last, self.last_index = faces, index
        return faces
