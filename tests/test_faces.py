"""Face detection (yuface, MTCNN fallback) and similarity alignment on a real photograph (skimage's astronaut,
public domain) and on hand-made geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from occau.faces.align import align_face, scale_of, similarity_transform, transform_points, warp_face
from occau.faces.face_detector import FaceDetector, available_backends, mtcnn_model_dir
from occau.faces.template import template_points

skimage_data = pytest.importorskip("skimage.data")

# Eye centres of the astronaut (512x512), measured by yuface and MTCNN (they agree within 3 px).
EYES = np.array([[202.0, 102.0], [247.0, 103.0]])
BACKENDS = [b for b in ("yuface", "mtcnn") if b in available_backends()]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_finds_the_astronaut(astronaut: np.ndarray, backend: str) -> None:
    face = FaceDetector((backend,)).detect_one(astronaut)
    assert face is not None and face.detector == backend and face.score > 0.8
    assert np.abs(face.landmarks5[:2] - EYES).max() < 6
    x0, y0, x1, y1 = face.box
    assert (face.landmarks5[:, 0] > x0).all() and (face.landmarks5[:, 0] < x1).all()
    assert (face.landmarks5[:, 1] > y0).all() and (face.landmarks5[:, 1] < y1).all()
    # template order: image-left eye, image-right eye, nose, image-left mouth corner, image-right mouth corner
    lm = face.landmarks5
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0] and lm[1, 1] < lm[2, 1] < lm[3, 1]


def test_aligned_crop_puts_the_eyes_on_the_template(astronaut: np.ndarray, detector: FaceDetector) -> None:
    face = detector.detect_one(astronaut)
    crop, matrix = align_face(astronaut, face.landmarks5, size=224)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    tpl = template_points(224)
    mapped = transform_points(face.landmarks5, matrix)
    # a 4-dof fit cannot match all 5 points of a real face; the eyes still land within a few px (IOD ~56 px)
    assert np.linalg.norm(mapped[:2] - tpl[:2], axis=1).max() < 8
    assert np.linalg.norm(mapped[:2].mean(0) - tpl[:2].mean(0)) < 5
    # independent check: detect again in the crop itself
    again = detector.detect_one(crop)
    assert np.linalg.norm(again.landmarks5[:2] - tpl[:2], axis=1).max() < 8


@pytest.mark.parametrize(
    "name, box", [("mouth box", (130, 165, 190, 260)), ("eye bar", (90, 114, 185, 265)), ("hand", (120, 180, 180, 230))]
)
def test_occluded_astronaut_is_still_detected(
    astronaut: np.ndarray, detector: FaceDetector, name: str, box: tuple
) -> None:
    y0, y1, x0, x1 = box
    img = astronaut.copy()
    img[y0:y1, x0:x1] = (40, 150, 200) if name == "hand" else 0
    face = detector.detect_one(img)
    assert face is not None, name
    assert np.abs(face.landmarks5[:2] - EYES).max() < 10, name


def test_large_images_are_downscaled_and_mapped_back(astronaut: np.ndarray, detector: FaceDetector) -> None:
    big = cv2.resize(astronaut, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)  # 1280 px > 960
    face = detector.detect_one(big)
    assert np.abs(face.landmarks5[:2] / 2.5 - EYES).max() < 6
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert detector.detect_one(gray) is not None


def test_no_face_gives_nothing(detector: FaceDetector) -> None:
    assert detector.detect(np.full((200, 200, 3), 127, np.uint8)) == []
    with pytest.raises(TypeError, match="uint8"):
        detector.detect(np.zeros((20, 20, 3), np.float32))
    with pytest.raises(ValueError, match="backends"):
        FaceDetector(("dlib",))


def test_mtcnn_files_are_found_through_importlib() -> None:
    folder = mtcnn_model_dir()
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["onet.onnx", "pnet.onnx", "rnet.onnx"]


def test_similarity_transform_recovers_a_known_pose() -> None:
    size = 112
    tpl = template_points(size)
    angle, scale, shift = np.deg2rad(20.0), 2.5, np.array([300.0, 120.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = tpl @ rot.T + shift  # the template seen rotated, enlarged and shifted in a source image
    matrix = similarity_transform(src, size)
    np.testing.assert_allclose(transform_points(src, matrix), tpl, atol=1e-6)
    assert scale_of(matrix) == pytest.approx(1 / scale)
    # pixels follow: a bright dot at each source landmark ends up on the template point
    img = np.zeros((500, 700), np.uint8)
    for x, y in src:
        cv2.circle(img, (round(float(x)), round(float(y))), 6, 255, -1)
    crop = warp_face(img, matrix, size)
    for x, y in tpl:
        assert crop[round(float(y)), round(float(x))] > 100
    assert similarity_transform(np.zeros((5, 2)), size) is None
    assert similarity_transform(np.full((5, 2), np.nan), size) is None
