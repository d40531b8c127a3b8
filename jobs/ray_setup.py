"""Connecting a job to Ray: the cluster it was submitted to, or a local Ray on a laptop."""

from __future__ import annotations

import os

import ray


def connect_ray(
    address: str | None, *, num_cpus: int | None = None, dashboard: bool = False
) -> bool:
    """Join the cluster at ``address`` (or RAY_ADDRESS, as `ray job submit` sets it), or start
    a local Ray. Returns whether this process started Ray (and so must shut it down).

    ``num_cpus`` sets a local Ray's logical CPUs (default: the machine's cores); Ray Train
    needs one per worker plus room for its controller. ``dashboard`` starts Ray's dashboard,
    which serves the State API that Ray Train's placement-group cleaner polls (without it the
    cleaner warns every few seconds and cannot clean up after a crashed controller).
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
        return False
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=True,
    )
    return True
