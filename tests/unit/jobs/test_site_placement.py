"""Pinning each hospital's actor to its own site (``federation.site_resource_prefix``): the Ray
options the federated job builds, and where a pinned hospital's key is read. No Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.federated import (
    SITE_RESOURCE_DEMAND,
    hospital_identity,
    hospital_names,
    hospital_options,
    site_resources,
)
from securemed.config import JobConfig, parse_config
from securemed.errors import ConfigError
from securemed.pki import FederationIdentity, PkiLayout


def pinned(pki_dir: Path) -> JobConfig:
    return parse_config(
        {"federation": {"site_resource_prefix": "site-"}, "security": {"pki_dir": str(pki_dir)}}
    )


def test_by_default_no_actor_asks_for_a_site_resource() -> None:
    config = JobConfig()
    assert config.federation.site_resource_prefix is None
    assert hospital_options(config, "hospital-1", 0.5)["resources"] == {}
    assert site_resources(config, "aggregator") == {}


def test_a_pinned_hospital_asks_for_its_own_site_resource_only(tmp_path: Path) -> None:
    config = pinned(tmp_path)
    options = hospital_options(config, "hospital-2", 0.5)
    assert options["resources"] == {"site-hospital-2": SITE_RESOURCE_DEMAND}
    assert options["num_cpus"] == 0.5 and options["max_concurrency"] == 2
    assert site_resources(config, "aggregator") == {"site-aggregator": SITE_RESOURCE_DEMAND}
    # a sliver, so that every actor of a site fits on a node advertising one unit of it
    assert 0 < SITE_RESOURCE_DEMAND * len(hospital_names(64)) <= 1


def test_pinning_without_a_mounted_pki_folder_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"security\.pki_dir"):
        parse_config({"federation": {"site_resource_prefix": "site-"}})
    with pytest.raises(ConfigError, match="site_resource_prefix"):
        parse_config({"federation": {"site_resource_prefix": ""}})


def test_an_unpinned_hospitals_identity_is_read_by_the_driver(pki) -> None:
    identity = hospital_identity(JobConfig(), pki.layout, "hospital-1")
    assert isinstance(identity, FederationIdentity) and identity.name == "hospital-1"


def test_a_pinned_hospitals_key_is_read_on_its_own_node_not_by_the_driver(
    tmp_path: Path, pki
) -> None:
    absent = PkiLayout(tmp_path / "mounted-only-on-hospital-3s-pods")
    deferred = hospital_identity(pinned(absent.root), absent, "hospital-3")
    assert not isinstance(deferred, FederationIdentity)  # nothing was read here
    with pytest.raises(ConfigError, match="missing"):
        deferred()  # where the file is absent, as on the driver's node

    there = hospital_identity(pinned(pki.layout.root), pki.layout, "hospital-3")
    assert not isinstance(there, FederationIdentity)
    identity = there()  # what the actor does in its constructor, on its site's node
    assert identity.name == "hospital-3"
