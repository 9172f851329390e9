"""The recorder of a sitting: the usual recorder, but only samples of a session.

Before playback starts the dial already moves the rating bar, with no session; those samples are
still published (other apps see them) but a sitting has nothing to file them under, so they are not
written (the plain recorder would put them in `<station>/no-session/`). Their seqs still count as
seen, so the first sample of the session is not reported as a gap.
"""

from __future__ import annotations

from typing import Any

from daq.subscribers.recorder import Recorder


class SittingRecorder(Recorder):
    def _sample(self, station: str, dial: str, sample: dict[str, Any]) -> None:
        if sample.get("session"):
            super()._sample(station, dial, sample)
            return
        try:
            boot, seq = str(sample["boot"]), int(sample["seq"])
        except (KeyError, TypeError, ValueError):
            return
        self.mark_seen(station, boot, dial, seq, "no-session")
