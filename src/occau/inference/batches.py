"""``FaceBatches``: aligned faces wait here until a batch is full, then the model runs on them, in order.

Faces are batched across frames (a batch of 16 faces is about 20 % faster per face than one at a time). With
``overlap`` the model runs in a second thread while the caller reads, detects and aligns the next frames; at most
one batch is in flight, so rows keep their order and memory stays bounded. On a CPU this buys nothing (torch already
keeps every core busy; docs/detect.md), on a GPU it keeps the CPU working while the GPU does.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from occau.inference.face_job import FaceJob
from occau.inference.inputs import Frame

FrameJobs = tuple[Frame, list[FaceJob]]


class FaceBatches:
    """``add`` frames with their faces; ``run(jobs)`` fills each job's row, ``deliver(frame, jobs)`` then gets every
    frame in the order added. ``close`` runs what is left and waits for it (call it in a ``finally``: what was read
    before an error is still delivered)."""

    def __init__(self, run: Callable[[list[FaceJob]], None], deliver: Callable[[Frame, list[FaceJob]], None],
                 batch_size: int, overlap: bool = False) -> None:
        self.run, self.deliver, self.batch_size = run, deliver, batch_size
        self.pending: list[FrameJobs] = []
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="occau-model") if overlap else None
        self.in_flight: Future[None] | None = None

    def add(self, frame: Frame, jobs: list[FaceJob]) -> None:
        self.pending.append((frame, jobs))
        if sum(len(js) for _, js in self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Send the waiting frames to the model (after the batch in flight, if any, is done)."""
        batch, self.pending = self.pending, []
        self.wait()
        if self.thread is None:
            self._finish(batch)
        else:
            self.in_flight = self.thread.submit(self._finish, batch)

    def wait(self) -> None:
        """Until the batch in flight is done; re-raises the model thread's error here."""
        done, self.in_flight = self.in_flight, None
        if done is not None:
            done.result()

    def close(self) -> None:
        try:
            self.flush()
            self.wait()
        finally:
            if self.thread is not None:
                self.thread.shutdown()

    def _finish(self, batch: list[FrameJobs]) -> None:
        jobs = [j for _, js in batch for j in js]
        if jobs:
            self.run(jobs)
        for frame, js in batch:
            self.deliver(frame, js)
