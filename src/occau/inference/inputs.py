"""What ``occau detect`` reads: image files, folders, globs and videos, as a stream of frames.

Inputs are expanded lazily and every frame is decoded only when it is needed, so a long video never sits in memory
whole. Anything that cannot be read raises ``InputError`` with a message that names the input and says why; the
caller records it and goes on with the next input. User occlusion masks (white = covered) are read the same way: an
image per image, a mask video per video, matched by file stem.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from occau.data.images import MAX_PIXELS, InputError, read_image

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
MASK_SUFFIXES = ("", "_mask", ".mask")  # foo.jpg -> foo.png, foo_mask.png or foo.mask.png in the mask folder


@dataclass(frozen=True)
class Source:
    """One input to process: an image file, a video file or an in-memory RGB array."""

    name: str  # what the ``input`` column shows
    kind: str  # "image" | "video" | "array"
    path: Path | None = None
    array: np.ndarray | None = None  # (H, W, 3) uint8 RGB for kind "array"


@dataclass
class Frame:
    source: str  # Source.name
    index: int  # frame number in the video, 0 for an image
    timestamp: float  # seconds from the start of the video; NaN for an image
    image: np.ndarray  # (H, W, 3) uint8 BGR, OpenCV's and the face detector's order
    mask: np.ndarray | None = None  # (H, W) bool, True = covered, from the user


def kind_of(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def expand_inputs(inputs: Sequence[str | Path | np.ndarray]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Files, folders (their image and video files, sorted, not recursive), globs and arrays -> sources, plus
    ``(input, reason)`` for every argument that yields nothing."""
    sources: list[Source] = []
    failures: list[tuple[str, str]] = []
    for i, item in enumerate(inputs):
        if isinstance(item, np.ndarray):
            sources.append(Source(f"array{i}", "array", array=item))
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and kind_of(p))
            if not found:
                exts = " ".join(sorted(IMAGE_EXTS | VIDEO_EXTS))
                failures.append((str(item), f"folder has no image or video files (looked for {exts})"))
            sources += [Source(str(p), kind_of(p), path=p) for p in found]
        elif path.is_file():
            kind = kind_of(path)
            # An unknown extension is tried as an image: decoding will say clearly if it is not one.
            sources.append(Source(str(path), kind or "image", path=path))
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file() and kind_of(Path(p)))
            if not found:
                failures.append((str(item), "pattern matched no image or video files"))
            sources += [Source(str(p), kind_of(p), path=p) for p in found]
        else:
            failures.append((str(item), "no such file or folder"))
    return sources, failures


def read_mask(path: Path, shape: tuple[int, int], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A mask image (white/non-zero = covered) -> (H, W) bool; it must have the picture's size."""
    gray = cv2.cvtColor(read_image(path, max_pixels), cv2.COLOR_BGR2GRAY)
    return _mask_from_gray(gray, shape, path)


def _mask_from_gray(gray: np.ndarray, shape: tuple[int, int], path: Path) -> np.ndarray:
    if gray.shape[:2] != tuple(shape):
        raise InputError(f"{path}: mask is {gray.shape[1]} x {gray.shape[0]} but its picture is {shape[1]} x {shape[0]}")
    return gray > 127


def open_video(path: Path) -> tuple[cv2.VideoCapture, float]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open video (corrupt, not a video, or a codec OpenCV lacks)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    return cap, (fps if fps and math.isfinite(fps) and fps > 0 else float("nan"))


def count_frames(source: Source, skip_frames: int = 0) -> int | None:
    """How many frames ``iter_frames`` will yield, for a progress bar: 1 for a picture; for a video what its
    header says (``CAP_PROP_FRAME_COUNT``, an estimate in some containers), or None when it does not say or the
    video cannot be opened (the error is raised when it is read)."""
    if source.kind != "video":
        return 1
    cap = cv2.VideoCapture(str(source.path))
    try:
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0.0
    finally:
        cap.release()
    if not math.isfinite(n) or n < 1:
        return None
    return math.ceil(int(n) / (skip_frames + 1))


def iter_frames(source: Source, skip_frames: int = 0, mask: Path | None = None,
                max_pixels: int = MAX_PIXELS) -> Iterator[Frame]:
    """Frames of one source, decoded one at a time; a video yields every ``skip_frames + 1``-th frame."""
    if source.kind == "array":
        yield Frame(source.name, 0, float("nan"), _array_to_bgr(source.array, source.name))
    elif source.kind == "image":
        image = read_image(source.path, max_pixels)
        user = read_mask(mask, image.shape[:2], max_pixels) if mask else None
        yield Frame(source.name, 0, float("nan"), image, user)
    else:
        yield from _iter_video(source, skip_frames, mask)


def _iter_video(source: Source, skip_frames: int, mask: Path | None) -> Iterator[Frame]:
    cap, fps = open_video(source.path)
    mask_cap = open_video(mask)[0] if mask else None
    try:
        index = 0
        while True:
            keep = index % (skip_frames + 1) == 0
            ok = cap.grab()  # decode; pixels are only converted for kept frames
            if not ok:
                break
            user = None
            if mask_cap is not None:
                mok, mframe = mask_cap.read()
                if not mok:
                    raise InputError(f"{mask}: mask video ends at frame {index}, before {source.path}")
            if keep:
                ok, image = cap.retrieve()
                if not ok:
                    raise InputError(f"{source.path}: frame {index} cannot be decoded")
                if mask_cap is not None:
                    user = _mask_from_gray(cv2.cvtColor(mframe, cv2.COLOR_BGR2GRAY), image.shape[:2], mask)
                yield Frame(source.name, index, index / fps, image, user)
            index += 1
        if index == 0:
            raise InputError(f"{source.path}: no frame could be decoded (empty or corrupt video)")
    finally:
        cap.release()
        if mask_cap is not None:
            mask_cap.release()


def _array_to_bgr(array: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise InputError(f"{name}: an in-memory image must be (H, W, 3) uint8 RGB, got {got}")
    return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)


class MaskLookup:
    """Finds the user's occlusion mask of an input: ``masks`` is a folder (matched by stem, masks of videos are
    videos), one file (when there is exactly one input) or a mapping ``{input: mask}``."""

    def __init__(self, masks: str | Path | Mapping[str, str | Path] | None, sources: Sequence[Source]) -> None:
        self.mapping: dict[str, Path] = {}
        self.folder: Path | None = None
        if masks is None:
            return
        if isinstance(masks, Mapping):
            self.mapping = {str(Path(k)): Path(v) for k, v in masks.items()}
        elif Path(masks).is_dir():
            self.folder = Path(masks)
        elif Path(masks).is_file():
            if len(sources) != 1:
                raise ValueError(f"masks={masks} is one file but there are {len(sources)} inputs; give a folder of "
                                 "masks named like the inputs")
            self.mapping = {sources[0].name: Path(masks)}
        else:
            raise FileNotFoundError(f"masks: {masks}: no such file or folder")

    def find(self, source: Source) -> Path | None:
        if source.name in self.mapping:
            return self.mapping[source.name]
        if self.folder is None or source.path is None:
            return None
        exts = VIDEO_EXTS if source.kind == "video" else IMAGE_EXTS
        for suffix in MASK_SUFFIXES:
            for p in sorted(self.folder.glob(f"{glob.escape(source.path.stem)}{suffix}.*")):
                if p.suffix.lower() in exts and p.resolve() != source.path.resolve():
                    return p
        return None
