"""What TensorBoard shows of a run folder, read with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard run in ``folder`` (its event files, not subfolders'):
    tag -> [(step, value)] in step order, after any restart marker's purge."""
    assert list(folder.glob("events.out.tfevents.*")), f"no event file in {folder}"
    reader = EventAccumulator(str(folder))
    reader.Reload()
    return {
        tag: [(event.step, event.value) for event in reader.Scalars(tag)]
        for tag in reader.Tags()["scalars"]
    }
