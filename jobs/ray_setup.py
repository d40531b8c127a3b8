"""Connecting a job to Ray: the cluster it was submitted to, or a local Ray on a laptop."""

from __future__ import annotations

import os

import ray


def connect_ray(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or RAY_ADDRESS, as `ray job submit` sets it), or start
    a local Ray. Returns whether this process started Ray (and so must shut it down).

    ``num_cpus`` sets a local Ray's logical CPUs (default: the machine's cores); Ray Train
    needs one per worker plus room for its controller.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
        return False
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=True,
    )
    return True
