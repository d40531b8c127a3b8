"""Shared fixtures: one small local Ray per test module, as Ray's own test suites do."""

from __future__ import annotations

import os

import pytest

import securemed.transport  # noqa: F401 - before anything imports grpc: TLS 1.3 only

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray without dashboard and with a small object store; shut down after the module."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


#: hospitals the test federation's CA certifies; "intruder" holds a valid certificate but is
#: not a member of any test federation
CERTIFIED = (*(f"hospital-{i}" for i in range(1, 9)), "intruder")


class TestPki:
    """A federation CA with certificates for :data:`CERTIFIED` and the aggregator."""

    def __init__(self, root) -> None:
        from securemed.pki import init_pki

        self.layout = init_pki(root, CERTIFIED)

    def identity(self, name: str):
        from securemed.pki import load_identity

        return load_identity(self.layout, name)

    @property
    def aggregator(self):
        return self.identity("aggregator")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPki:
    """One federation PKI for the whole session (P-256 keys take milliseconds)."""
    return TestPki(tmp_path_factory.mktemp("federation-pki"))


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory) -> TestPki:
    """Another CA issuing the same names: its certificates must be worthless to us."""
    return TestPki(tmp_path_factory.mktemp("foreign-pki"))
