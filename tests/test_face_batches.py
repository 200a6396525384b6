"""``FaceBatches``: faces batched across frames, delivered in the order added, inline or in a model thread."""

from __future__ import annotations

import threading
import time

import pytest

from occau.inference.batches import FaceBatches


def recorder(delay: float = 0.0):
    """(run, deliver, log): ``run`` marks each job with the thread it ran in, after ``delay`` seconds."""
    log: dict[str, list] = {"runs": [], "delivered": []}

    def run(jobs: list[dict]) -> None:
        time.sleep(delay)
        log["runs"].append([j["id"] for j in jobs])
        for job in jobs:
            job["thread"] = threading.current_thread().name

    def deliver(frame: int, jobs: list[dict]) -> None:
        log["delivered"].append((frame, [j["id"] for j in jobs], {j["thread"] for j in jobs}))

    return run, deliver, log


@pytest.mark.parametrize("overlap", [False, True])
def test_frames_are_delivered_in_order_in_batches_of_at_least_the_batch_size(overlap):
    """Frames with 0, 1 or 2 faces: a batch closes once it holds >= 3 faces; a faceless frame is still delivered;
    ``close`` runs the rest. With ``overlap`` the model runs in its own thread, the order is the same."""
    run, deliver, log = recorder(delay=0.01)
    batches = FaceBatches(run, deliver, batch_size=3, overlap=overlap)
    faces = [2, 0, 1, 1, 2, 0, 1]  # faces per frame
    next_id = 0
    for frame, n in enumerate(faces):
        batches.add(frame, [{"id": next_id + i} for i in range(n)])
        next_id += n
    batches.close()
    assert log["runs"] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [f for f, _, _ in log["delivered"]] == list(range(len(faces)))
    assert [i for _, ids, _ in log["delivered"] for i in ids] == list(range(next_id))
    threads = set().union(*(t for _, _, t in log["delivered"]))
    assert (threading.main_thread().name in threads) != overlap


def test_an_error_in_the_model_thread_reaches_the_caller_and_earlier_frames_are_delivered():
    def run(jobs: list[dict]) -> None:
        if jobs[0]["id"] >= 2:
            raise RuntimeError("model failed")

    delivered = []
    batches = FaceBatches(run, lambda frame, jobs: delivered.append(frame), batch_size=2, overlap=True)
    with pytest.raises(RuntimeError, match="model failed"):
        for frame in range(4):
            batches.add(frame, [{"id": 2 * frame}, {"id": 2 * frame + 1}])
        batches.close()
    batches.thread.shutdown()
    assert delivered == [0]
