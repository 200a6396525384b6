"""``Progress``: frames done out of the total, the ETA and faces per second on stderr, for one ``occau detect`` run.

Hours of video need an ETA; a disabled bar costs nothing and opens no video (the totals are read from each video's
header only when the bar is shown).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from tqdm import tqdm

from occau.inference.inputs import Source, count_frames


class Progress:
    """Frames done / total (with ETA) and faces per second on stderr, for one ``Detector.detect`` call.

    Disabled, it costs nothing and opens no video: the totals are only read (from each video's header) when shown.
    """

    def __init__(self, sources: Sequence[Source], skip_frames: int, enabled: bool) -> None:
        self.counts: list[int | None] = [None] * len(sources)  # frames each source should yield
        if enabled:
            self.counts = [count_frames(s, skip_frames) for s in sources]
        total = None if None in self.counts else sum(c for c in self.counts if c is not None)
        self.bar = tqdm(total=total, desc="occau detect", unit="frame", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True)
        self.enabled, self.faces, self.t0 = enabled, 0, time.perf_counter()
        self.start = 0  # the bar's count when the current source began

    def begin(self) -> None:
        self.start = self.bar.n

    def end(self, expected: int | None) -> None:
        """A source is done: skip the frames it was counted for but did not yield (it failed, or its header
        promised more), so the ETA stays right."""
        if self.enabled and expected is not None and self.bar.n - self.start < expected:
            self.bar.update(expected - (self.bar.n - self.start))

    def frame(self, faces: int) -> None:
        """One more frame read, detected and aligned, with ``faces`` faces in it."""
        if not self.enabled:
            return
        self.faces += faces
        rate = self.faces / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{rate:.2f} faces/s", refresh=False)
        self.bar.update(1)

    def wrap(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` that clears the bar while it writes, so messages do not land in the middle of it."""
        if not self.enabled:
            return log

        def write(msg: str) -> None:
            with tqdm.external_write_mode(file=sys.stderr):
                log(msg)

        return write

    def close(self) -> None:
        self.bar.close()
