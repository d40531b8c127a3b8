"""A federation PKI for the secure-aggregation tests, made once per session (keys take ms)."""

from __future__ import annotations

from pathlib import Path

import pytest

from securemed.pki import init_pki, load_identity

HOSPITALS = tuple(f"hospital-{i:02d}" for i in range(1, 25))


class Federation:
    def __init__(self, root: Path) -> None:
        self.layout = init_pki(root, HOSPITALS)
        self.ca_pem = self.layout.ca_cert.read_bytes()
        self.identities = {name: load_identity(self.layout, name) for name in HOSPITALS}


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return Federation(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def foreign_federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return Federation(tmp_path_factory.mktemp("foreign-pki"))
