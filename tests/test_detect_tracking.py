"""``occau detect --detect-every K``: the face detector runs on one frame in K and the landmarks are followed by
optical flow in between; a cut loses the track and the detector runs on that very frame; ``--detect-every 1`` is
the detector on every frame, as before. And the progress bar: on stderr unless ``--quiet``, off in the API.

The video is scikit-image's astronaut (public domain) sliding smoothly, 2.5 px right and 1 px down a frame, in
256 px frames written as MJPG. A tiny random-weight student bundle (as in test_detect.py) stands in for a trained
one: what is checked is the face front end, not the AUs."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from occau.cli import main as cli
from occau.faces.face_detector import FaceDetector
from occau.inference import Detector
from occau.inference.tracking import FlowThresholds, LandmarkFlow
from tiny_student import astronaut_bgr, make_video, save_tiny_student

FRAMES, SIDE = 30, 256
STEP = np.array([2.5, 1.0])  # pixels per frame the face slides (right, down)
CUT = 13  # the frame where the video cuts: not one the detector is scheduled for with K = 5
JUMP = (70.0, 60.0)  # where the face jumps at the cut (pixels)
X_COLS, Y_COLS = [f"x_{i}" for i in range(5)], [f"y_{i}" for i in range(5)]


# ------------------------------------------------------------------------------------------------ set-up
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def detector(bundle) -> Detector:
    return Detector(bundle, device="cpu")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return astronaut_bgr()  # (512, 512, 3)


def slide(small: np.ndarray, i: int, jump: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Frame ``i``: the 256 px astronaut moved by ``i`` steps (sub-pixel, so the flow cannot just count pixels)."""
    dx, dy = STEP * i + np.array([-30.0, -10.0]) + np.array(jump)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(small, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def videos(astronaut, tmp_path_factory) -> dict[str, Path]:
    """``smooth``: 30 frames of the sliding face. ``jump``: at frame 13 the face jumps 70 px right and 60 px down
    and slides on. ``gone``: from frame 13 on, a picture without a face (scikit-image's coffee cup, sliding too)."""
    from skimage import data

    small = cv2.resize(astronaut, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    coffee = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    smooth = [slide(small, i) for i in range(FRAMES)]
    folder = tmp_path_factory.mktemp("videos")
    return {
        "smooth": make_video(folder / "smooth.avi", smooth),
        "jump": make_video(folder / "jump.avi", smooth[:CUT] + [slide(small, i, JUMP) for i in range(CUT, FRAMES)]),
        "gone": make_video(folder / "gone.avi", smooth[:CUT] + [slide(coffee, i) for i in range(CUT, FRAMES)]),
    }


def decoded_checksums(video: Path) -> dict[int, int]:
    """Checksum of each decoded frame -> its index, to tell which frames the face detector was given."""
    cap, out = cv2.VideoCapture(str(video)), {}
    while (got := cap.read())[0]:
        out[zlib.crc32(got[1].tobytes())] = len(out)
    cap.release()
    assert len(out) == FRAMES, "frames must differ for the checksums to name them"
    return out


def run_counting(detector: Detector, video: Path, monkeypatch, **options) -> tuple[pd.DataFrame, list[int]]:
    """``detector.detect(video, **options)`` with the face detector's calls recorded -> (rows, frames it ran on)."""
    seen: list[int] = []
    frames = decoded_checksums(video)
    real = detector.face_detector.detect

    def counting(image: np.ndarray) -> list:
        seen.append(frames[zlib.crc32(image.tobytes())])
        return real(image)

    with monkeypatch.context() as m:
        m.setattr(detector.face_detector, "detect", counting)
        df = detector.detect(video, **options)
    return df, seen


def landmarks(df: pd.DataFrame) -> np.ndarray:
    """(rows, 5, 2) landmark positions of a result table."""
    return np.stack([df[X_COLS].to_numpy(float), df[Y_COLS].to_numpy(float)], axis=-1)


# ------------------------------------------------------------------------------------------------ tracking
def test_detect_every_5_detects_one_frame_in_5_and_tracks_the_rest(detector, videos, monkeypatch):
    """Measured: the detector runs on frames 0, 5, ..., 25 (6 of 30). The flowed landmarks are 1.4 px (mean) and
    3.6 px (max) from the detector's own on those frames, whose landmarks are whole pixels and jitter by about 2 px
    from frame to frame, and within 0.05 px of the true motion since the last detection."""
    df, ran = run_counting(detector, videos["smooth"], monkeypatch, detect_every=5)
    ref, ran_ref = run_counting(detector, videos["smooth"], monkeypatch, detect_every=1)
    assert ran == list(range(0, FRAMES, 5)) and ran_ref == list(range(FRAMES))
    assert df.frame.tolist() == ref.frame.tolist() == list(range(FRAMES)) and (df.face_id == 0).all()
    tracked = df.tracked.to_numpy(bool)
    assert (~tracked).nonzero()[0].tolist() == ran
    assert df.FaceScore.isna().to_numpy().tolist() == tracked.tolist() and (df.detector == "yuface").all()
    # Against the detector run on every frame.
    error = np.linalg.norm(landmarks(df) - landmarks(ref), axis=-1)  # (30, 5) pixels
    assert error[~tracked].max() == 0 and error[tracked].max() <= 4.0 and error[tracked].mean() <= 2.5
    # Against the true motion: the last detection's landmarks moved by STEP per frame since.
    last = np.maximum.accumulate(np.where(tracked, 0, np.arange(FRAMES)))  # (30,) frame of the last detection
    truth = landmarks(df)[last] + (np.arange(FRAMES) - last)[:, None, None] * STEP
    assert np.abs(landmarks(df) - truth).max() <= 0.25
    # The box moves with the face and keeps its size.
    np.testing.assert_allclose(df.FaceRectX.diff()[tracked], STEP[0], atol=0.5)
    np.testing.assert_allclose(df.FaceRectWidth[tracked], df.FaceRectWidth[last[tracked]], atol=0.5)


@pytest.mark.parametrize("cut", ["jump", "gone"])
def test_a_cut_loses_the_track_and_the_detector_runs_on_that_frame(detector, videos, monkeypatch, cut):
    """At the cut (frame 13, between scheduled runs) the flow loses the face and the detector runs there, then every
    5 frames again. ``jump``: every frame keeps one row, from the cut on at the face's new place (within a few px of
    the detector's) and none where the face used to be. ``gone``: no row from the cut on."""
    df, ran = run_counting(detector, videos[cut], monkeypatch, detect_every=5)
    assert ran == [0, 5, 10, CUT, CUT + 5, CUT + 10, CUT + 15]
    before, after = df[df.frame < CUT], df[df.frame >= CUT]
    assert before.frame.tolist() == list(range(CUT)) and (before.face_id == 0).all()
    if cut == "gone":
        assert after.empty
        return
    ref = run_counting(detector, videos[cut], monkeypatch)[0].set_index("frame").loc[after.frame]
    assert after.frame.tolist() == list(range(CUT, FRAMES)) and after.face_id.nunique() == 1
    assert after.tracked.tolist()[0] == 0  # detected at the cut, not carried over it
    old_place = landmarks(before)[-1] + STEP * (after.frame.to_numpy() - (CUT - 1))[:, None, None]  # (17, 5, 2)
    assert np.linalg.norm(landmarks(after) - old_place, axis=-1).min() > 50
    assert np.linalg.norm(landmarks(after) - landmarks(ref), axis=-1).max() <= 4.0


def test_detect_every_1_is_the_detector_on_every_frame(detector, videos, monkeypatch):
    """The default and ``detect_every=1`` give the same rows, on the video whose face vanishes: there the last good
    face is reused for ``max_gap`` frames (tracked = 1) as before, since no flow says that it is gone."""
    default, ran = run_counting(detector, videos["gone"], monkeypatch)
    explicit, ran_explicit = run_counting(detector, videos["gone"], monkeypatch, detect_every=1)
    pd.testing.assert_frame_equal(default, explicit)
    assert ran == ran_explicit == list(range(FRAMES))
    assert default.tracked.tolist() == [0] * CUT + [1] * detector.max_gap


def test_skip_frames_with_detect_every(detector, videos, monkeypatch):
    """K counts processed frames: with --skip-frames 2 and --detect-every 2 the detector sees video frames 0, 6,
    ..., 24 and the frames between them are tracked."""
    df, ran = run_counting(detector, videos["smooth"], monkeypatch, skip_frames=2, detect_every=2)
    assert df.frame.tolist() == list(range(0, FRAMES, 3)) and ran == list(range(0, FRAMES, 6))
    assert df.tracked.tolist() == [0, 1] * 5 and (df.face_id == 0).all()


def test_overlap_runs_the_model_in_its_own_thread_with_the_same_rows(detector, videos, monkeypatch, tmp_path):
    """``overlap=True``: the model runs in a second thread while the next frames are detected, and the rows (order,
    ids, probabilities) and the CSV are those of the inline run. The default on a CPU is inline."""
    threads: list[str] = []
    real = detector.predict

    def recording(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(detector, "predict", recording)
    inline = detector.detect(videos["jump"], batch_size=4, detect_every=5, out=tmp_path / "inline.csv")
    assert set(threads) == {threading.main_thread().name}  # the default on a CPU
    threads.clear()
    overlapped = detector.detect(videos["jump"], batch_size=4, detect_every=5, overlap=True,
                                 out=tmp_path / "overlap.csv")
    assert len(threads) == 8 and threading.main_thread().name not in threads  # 30 faces in batches of 4
    pd.testing.assert_frame_equal(inline, overlapped)
    assert (tmp_path / "inline.csv").read_text() == (tmp_path / "overlap.csv").read_text()


def test_overlap_keeps_the_rows_written_before_a_model_crash(detector, videos, monkeypatch, tmp_path):
    """A crash in the model thread reaches the caller, and the batches done before it are in the CSV."""
    calls = []
    real = detector.predict

    def crash_on_third(*args):
        calls.append(1)
        if len(calls) >= 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(detector, "predict", crash_on_third)
    out = tmp_path / "res.csv"
    with pytest.raises(KeyboardInterrupt):
        detector.detect(videos["smooth"], batch_size=4, overlap=True, out=out)
    assert pd.read_csv(out).frame.tolist() == list(range(8))


def test_flow_thresholds_reject_implausible_head_motion(astronaut):
    """The flow follows a face that turns 5 degrees and grows 5 % in one frame. It gives up on one that turns 20
    degrees or grows 30 % (a cut or a bad track: heads do not move like that in one frame), and it is the scale and
    rotation thresholds that do so: without them LK still finds a transform there."""
    grey = cv2.cvtColor(cv2.resize(astronaut, (SIDE, SIDE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    face = FaceDetector().detect(grey)[0]
    centre = tuple(float(v) for v in face.landmarks5.mean(axis=0))
    flow, loose = LandmarkFlow(), LandmarkFlow(FlowThresholds(max_scale_change=10.0, max_rotation_deg=180.0))
    for angle, scale, plausible in [(5, 1.05, True), (20, 1.0, False), (0, 1.3, False)]:
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        moved = cv2.warpAffine(grey, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        (got,) = flow.follow(grey, moved, [face])
        assert got.held == plausible and (got.detection is not None) == plausible, (angle, scale)
        assert loose.follow(grey, moved, [face])[0].detection is not None, (angle, scale)
        if plausible:
            expected = face.landmarks5 @ matrix[:, :2].T + matrix[:, 2]
            assert np.abs(got.detection.landmarks5 - expected).max() <= 1.0


# ------------------------------------------------------------------------------------------------ progress bar
def test_progress_bar_on_stderr_unless_quiet(bundle, videos, astronaut, tmp_path, capsys):
    """A folder with the 30-frame video and a photo: 31 frames in all, from the video's header. The bar (frames,
    faces/s) goes to stderr; --quiet has none, and neither has the API unless ``progress=True``."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.avi").write_bytes(videos["smooth"].read_bytes())
    cv2.imwrite(str(folder / "photo.png"), astronaut)
    argv = ["detect", str(folder), "--checkpoint", str(bundle), "--out", str(tmp_path / "res.csv"),
            "--detect-every", "5"]
    assert cli(argv + ["--quiet"]) == 0
    quiet = capsys.readouterr()
    assert "faces/s" not in quiet.err + quiet.out and "31/31" not in quiet.err
    assert cli(argv) == 0
    shown = capsys.readouterr()
    assert "31/31" in shown.err and "faces/s" in shown.err and "frame" in shown.err
    assert "faces/s" not in shown.out
    assert len(pd.read_csv(tmp_path / "res.csv")) == 31
    Detector(bundle, device="cpu").detect(folder / "photo.png")
    assert capsys.readouterr().err == ""
    assert cli(argv[:-1] + ["0"]) == 2  # --detect-every 0
