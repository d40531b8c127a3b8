"""The committed gRPC stubs are exactly what `make protos` generates from protos/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTO = "securemed/transport/federation/v1/federation.proto"
GENERATED = ["federation_pb2.py", "federation_pb2.pyi", "federation_pb2_grpc.py"]


def test_committed_stubs_match_a_fresh_generation(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iprotos",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"protos/{PROTO}",
        ],
        cwd=ROOT,
        check=True,
    )
    folder = Path(PROTO).parent
    for name in GENERATED:
        fresh = (tmp_path / folder / name).read_text()
        committed = (ROOT / folder / name).read_text()
        assert fresh == committed, f"{folder / name} is stale: run `make protos`"


def test_makefile_generates_from_the_same_proto():
    assert PROTO in (ROOT / "Makefile").read_text()
