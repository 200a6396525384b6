"""Face identities across video frames, the reuse of the last good face when detection fails, and optical-flow
tracking of the landmarks between detector runs.

A hand or a microphone in front of the face makes detectors miss single frames; the face has not moved much, so the
last good detection (and with it the alignment transform) is reused for up to ``max_gap`` frames (FACE_FRONTEND.md
§3). Faces keep their ``face_id`` from frame to frame by box overlap.

With ``detect_every = K > 1`` the face detector, which costs about as much as the model, runs only on every K-th
processed frame; in between, ``LandmarkFlow`` carries each face's five landmarks forward with pyramidal
Lucas-Kanade optical flow. The flow itself says when it cannot be trusted (``FlowThresholds``), and then the detector
runs on that very frame. ``FaceTracker`` stays the one place that gives faces their ids: flowed faces keep theirs,
and a detection is matched against where the flow says the faces are now.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from occau.faces.align import transform_points
from occau.faces.face_detector import FaceDetection


@dataclass(frozen=True)
class TrackedFace:
    face_id: int
    detection: FaceDetection
    tracked: bool  # True: not detected in this frame (carried by the flow, or the last good detection reused)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (4,) x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# ---------------------------------------------------------------------------------------------- optical flow
@dataclass(frozen=True)
class FlowThresholds:
    """When the flow of one face is trusted, per processed frame (with ``skip_frames``, between kept frames).

    A face's points are its 5 landmarks plus up to ``corners`` Shi-Tomasi corners inside its box. A point counts
    when LK finds it both ways and comes back within ``max_fb_error`` pixels (forward-backward check: a point on an
    edge, under a moving occluder or outside the picture does not). A similarity transform is fitted (RANSAC) to the
    points that count; it must be backed by enough of them, and real heads neither grow nor turn much in one frame.
    A landmark is *followed* when its own point counts and moves with the face (within ``max_landmark_residual``
    inter-ocular distances of the fitted transform; expressions move mouth corners less than that per frame).
    """

    max_fb_error: float = 1.0  # pixels, forward-backward round trip of one point
    min_points: int = 6  # points that agree with the fitted similarity ...
    min_fraction: float = 0.3  # ... and at least this fraction of the face's points
    max_scale_change: float = 0.15  # |scale - 1| of the frame-to-frame similarity
    max_rotation_deg: float = 15.0  # its rotation
    max_landmark_residual: float = 0.15  # x inter-ocular distance (at least ``min_residual_px``)
    min_residual_px: float = 2.0
    ransac_px: float = 2.0  # RANSAC inlier distance (at least; 0.05 inter-ocular distances on large faces)
    corners: int = 20  # Shi-Tomasi corners per face, besides the 5 landmarks
    window: int = 21  # LK window side, pixels
    levels: int = 3  # LK pyramid levels above the full image: follows jumps of up to ~50 px between frames


@dataclass(frozen=True)
class Followed:
    """One face after the flow: where it is now (None: the flow lost it entirely, e.g. a cut or it left the
    picture) and whether all five landmarks were followed (``held``; otherwise the detector must look again)."""

    detection: FaceDetection | None
    held: bool


class LandmarkFlow:
    """Pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``) on grey frames, all faces' points in one call."""

    def __init__(self, thresholds: FlowThresholds | None = None) -> None:
        self.t = thresholds or FlowThresholds()
        self.lk = {"winSize": (self.t.window, self.t.window), "maxLevel": self.t.levels,
                   "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)}

    def follow(self, prev: np.ndarray, cur: np.ndarray, faces: Sequence[FaceDetection]) -> list[Followed]:
        """Grey frames (H, W) uint8 and the faces of ``prev`` -> each face in ``cur``."""
        if not faces:
            return []
        seeds = [self._points(prev, f) for f in faces]  # each (5 + c, 2) float32, landmarks first
        moved, good = self._track(prev, cur, np.concatenate(seeds))  # (P, 2), (P,)
        out, start = [], 0
        for face, pts in zip(faces, seeds):
            stop = start + len(pts)
            out.append(self._judge(face, pts, moved[start:stop], good[start:stop]))
            start = stop
        return out

    def _points(self, grey: np.ndarray, face: FaceDetection) -> np.ndarray:
        """The 5 landmarks and corners inside the face box (clipped to the picture) -> (5 + c, 2) float32."""
        h, w = grey.shape
        x0, y0 = max(0, int(face.box[0])), max(0, int(face.box[1]))
        x1, y1 = min(w, int(math.ceil(face.box[2]))), min(h, int(math.ceil(face.box[3])))
        lms = np.asarray(face.landmarks5, dtype=np.float32).reshape(5, 2)
        if x1 - x0 < 8 or y1 - y0 < 8 or self.t.corners == 0:
            return lms
        spacing = max(3.0, (x1 - x0) / 10)
        found = cv2.goodFeaturesToTrack(grey[y0:y1, x0:x1], self.t.corners, 0.01, spacing)  # (c, 1, 2) or None
        if found is None:
            return lms
        return np.concatenate([lms, found.reshape(-1, 2) + np.float32([x0, y0])])

    def _track(self, prev: np.ndarray, cur: np.ndarray, p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward and backward LK -> positions in ``cur`` (P, 2) and whether each point counts (P,) bool."""
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0.reshape(-1, 1, 2), None, **self.lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **self.lk)
        p1, back = p1.reshape(-1, 2), back.reshape(-1, 2)
        h, w = cur.shape
        inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        fb = np.linalg.norm(back - p0, axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & inside & (fb <= self.t.max_fb_error)
        return p1.astype(np.float64), good

    def _judge(self, face: FaceDetection, p0: np.ndarray, p1: np.ndarray, good: np.ndarray) -> Followed:
        """Fit the face's frame-to-frame similarity and decide what of it can be believed."""
        iod = max(1.0, float(np.linalg.norm(face.landmarks5[1] - face.landmarks5[0])))
        matrix = self._similarity(p0[good], p1[good], iod, len(p0))
        if matrix is None:
            return Followed(None, False)
        predicted = transform_points(p0[:5], matrix)  # (5, 2) where the rigid face puts the landmarks
        tolerance = max(self.t.min_residual_px, self.t.max_landmark_residual * iod)
        followed = good[:5] & (np.linalg.norm(p1[:5] - predicted, axis=1) <= tolerance)
        landmarks = np.where(followed[:, None], p1[:5], predicted)
        return Followed(FaceDetection(move_box(face.box, matrix), face.score, landmarks, face.detector),
                        bool(followed.all()))

    def _similarity(self, p0: np.ndarray, p1: np.ndarray, iod: float, total: int) -> np.ndarray | None:
        """(2, 3) prev -> cur similarity from the points that count, or None when too few agree or it is not a
        plausible head motion."""
        if len(p0) < max(2, self.t.min_points):
            return None
        threshold = max(self.t.ransac_px, 0.05 * iod)
        matrix, inliers = cv2.estimateAffinePartial2D(p0, p1, method=cv2.RANSAC, ransacReprojThreshold=threshold)
        if matrix is None or inliers is None:
            return None
        agree = int(inliers.sum())
        if agree < self.t.min_points or agree < self.t.min_fraction * total:
            return None
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        angle = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
        if abs(scale - 1.0) > self.t.max_scale_change or abs(angle) > self.t.max_rotation_deg:
            return None
        return matrix


def move_box(box: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A (4,) x0, y0, x1, y1 box carried by a similarity: its centre moves, its sides scale (it stays upright)."""
    centre = transform_points(np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]), matrix)[0]
    half = np.array([box[2] - box[0], box[3] - box[1]]) * math.hypot(matrix[0, 0], matrix[1, 0]) / 2
    return np.concatenate([centre - half, centre + half])


# ---------------------------------------------------------------------------------------------- identities
class FaceTracker:
    """Greedy IoU matching to the previous frame's faces; new faces get the next free id.

    ``step`` is what the detector calls per processed video frame. With ``detect_every = 1`` it is ``update`` on
    that frame's detections (the detector runs on every frame). With ``detect_every = K > 1`` the detector runs on
    the first frame, on every K-th processed frame after its last run (also with no face in view: a face coming
    into view waits at most K - 1 frames), and on any frame where the flow did not hold every face or a face was
    only being carried because the detector had missed it; on the other frames the faces are the flowed ones,
    ``tracked``. When the detector then finds no face, the faces the flow still sees are carried (``tracked``) for
    up to ``max_gap`` frames, the detector trying again on every frame; a face the flow lost entirely is gone, so
    no stale face is placed where it used to be (the flow knows what ``update`` alone cannot: that it is gone).
    """

    def __init__(self, max_gap: int = 15, min_iou: float = 0.3, detect_every: int = 1,
                 flow: LandmarkFlow | None = None) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.max_gap, self.min_iou, self.detect_every = max_gap, min_iou, detect_every
        self.last: list[TrackedFace] = []
        self.last_index: int | None = None  # frame of the last good detection (or of a frame the flow held)
        self.next_id = 0
        if flow is None and detect_every > 1:
            flow = LandmarkFlow()
        self.flow = flow
        self.grey: np.ndarray | None = None  # (H, W) uint8, the previous processed frame (detect_every > 1)
        self.since_run = detect_every - 1  # processed frames since the detector last ran (the first frame runs it)
        self.missing = False  # the detector's last run found nothing; faces are being carried by the flow

    def update(self, index: int, detections: list[FaceDetection]) -> list[TrackedFace]:
        """This frame's detections -> faces with ids; no detection -> the last faces, reused within ``max_gap``."""
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

    def step(self, index: int, image: np.ndarray,
             detect: Callable[[], list[FaceDetection]]) -> list[TrackedFace]:
        """The faces of one processed frame (BGR (H, W, 3) or grey (H, W) uint8); ``detect()`` runs the face
        detector on it, and is only called when needed."""
        if self.detect_every == 1:
            return self.update(index, detect())
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        try:
            return self._step_with_flow(index, grey, detect)
        finally:
            self.grey = grey

    def _step_with_flow(self, index: int, grey: np.ndarray,
                        detect: Callable[[], list[FaceDetection]]) -> list[TrackedFace]:
        self.since_run += 1
        followed = self._follow(grey)
        lost = len(followed) != len(self.last) or not all(f.held for f in followed)
        if not (lost or self.missing or self.since_run >= self.detect_every):
            self.last = [TrackedFace(f.face_id, g.detection, True) for f, g in zip(self.last, followed)]
            if self.last:
                self.last_index = index  # the flow held every face: as good as a detection, for ``max_gap``
            return self.last
        self.since_run = 0
        if followed:  # match detections against where the flow says the faces are now (lost: where they were)
            self.last = [TrackedFace(f.face_id, g.detection or f.detection, True)
                         for f, g in zip(self.last, followed)]
        found = detect()
        if found:
            self.missing = False
            return self.update(index, found)
        seen = [f for f, g in zip(self.last, followed) if g.detection is not None]
        if not seen or self.last_index is None or index - self.last_index > self.max_gap:
            self.last, self.missing = [], False
            return []
        self.last, self.missing = seen, True
        return seen

    def _follow(self, grey: np.ndarray) -> list[Followed]:
        if not self.last or self.grey is None or self.grey.shape != grey.shape:
            return []
        return self.flow.follow(self.grey, grey, [f.detection for f in self.last])
