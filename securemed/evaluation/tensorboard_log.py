"""TensorBoard event files for the training jobs: named scalars, one step at a time.

Every training job writes ``<its output folder>/tensorboard/`` (one TensorBoard run per
variant where a job has variants), so ``tensorboard --logdir <output folder>`` follows loss,
utility, epsilon and timing while the job runs. Each step is flushed as it is written, so a
crash loses nothing already logged, and a resumed job passes ``purge_step`` so the steps it
redoes replace the ones the crash left behind.

Only scalars, and only aggregate ones (a test AUROC, a mean loss, an epsilon): no histogram,
image or text, which could carry a film or a note. Which number goes under which tag is the
job's business; this module only writes them. It does not import Ray.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.summary import scalar

#: the subfolder of a job's output folder that holds its event files
TENSORBOARD_DIR = "tensorboard"
_opened = itertools.count()


class ScalarLog:
    """Scalars in a TensorBoard event file under ``folder``, flushed after every step.

    Args:
        folder: the TensorBoard run's folder (made if missing); several logs may share one,
            each in its own file, and TensorBoard shows them as one run.
        purge_step: when resuming, the first step about to be redone: TensorBoard drops what
            earlier files logged from that step on.

    Example::

        with ScalarLog(output / TENSORBOARD_DIR) as log:
            log.write(1, {"federation/test_macro_auroc": 0.71, "privacy/epsilon/hospital-1": 0.9})
    """

    def __init__(self, folder: Path, *, purge_step: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        # an event file is named by the second and the host it was opened on: the process and
        # a counter keep apart two writers of one run (a driver and a worker, a quick restart)
        suffix = f".{os.getpid()}.{next(_opened)}"
        # tensorboardX's SummaryWriter hands events to a thread through a queue, and its
        # flush() does not wait for that queue: its file writer, called here directly,
        # writes every event before returning
        self._events = EventsWriter(str(folder / "events"), suffix)
        if purge_step is not None:
            # what SummaryWriter(purge_step=...) writes: a restart marker at that step
            start = SessionLog(status=SessionLog.START)
            self._events.write_event(
                Event(wall_time=time.time(), step=purge_step, session_log=start)
            )
            self._events.flush()

    def write(self, step: int, scalars: Mapping[str, float | None]) -> None:
        """Log ``scalars`` by tag at ``step``, then flush. ``None`` and NaN (an undefined
        metric, such as AUROC on one-valued labels) are left out rather than drawn as a value."""
        now = time.time()
        for tag, value in scalars.items():
            if value is None or math.isnan(value):
                continue
            self._events.write_event(
                Event(wall_time=now, step=step, summary=scalar(tag, float(value)))
            )
        self._events.flush()

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> ScalarLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
