"""Write the parts of the KubeRay manifests that are copies of another file.

    python deploy/kuberay/render.py            # rewrite what differs, say which files
    python deploy/kuberay/render.py --check    # exit 1 (naming the files) when any differs

Three blocks have one source each, so that a Serve, cluster or job setting is edited in one
place only:

- ``rayservice-report.yaml``'s ``spec.serveConfigV2`` is ``deploy/serve.yaml`` with
  :data:`SERVE_OVERRIDES` on top;
- ``rayjob-federated.yaml``'s ``spec.rayClusterSpec`` is ``raycluster-sites.yaml``'s ``spec``;
- ``core/configmap-federated.yaml``'s ``data."federated.yaml"`` is ``configs/federated.yaml``
  with :data:`FEDERATED_OVERRIDES` on top.

Blocks are compared as data (a reformatted but equal block is no drift) and rewritten in place,
so the comments around them stay. Only the standard library and PyYAML: this runs wherever the
manifests are edited, without the project installed. It does not validate what it writes;
``tests/unit/deploy/test_kuberay_manifests.py`` does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = Path("deploy/kuberay")

#: what a Kubernetes Service needs that a laptop must not have: the proxy listening beyond
#: loopback (serve.yaml keeps 127.0.0.1 for `make serve`)
SERVE_OVERRIDES: dict[tuple[str, ...], Any] = {("http_options", "host"): "0.0.0.0"}

#: where the cluster differs from a laptop run; the paths are the manifests' mount points
FEDERATED_OVERRIDES: dict[tuple[str, ...], Any] = {
    ("federation", "bind_host"): "0.0.0.0",
    ("federation", "site_resource_prefix"): "site-",
    ("security", "pki_dir"): "/etc/securemed/pki",
    ("security", "server_name"): "securemed-aggregator",
}


@dataclass(frozen=True)
class Block:
    """One generated block: the file it sits in, its key path there, and its source."""

    file: Path  # relative to the repository root
    path: tuple[str, ...]
    expected: Callable[[Path], Any]
    literal: bool  # a YAML document inside a string (`key: |`), or a plain mapping


def _read(root: Path, relative: str | Path) -> Any:
    return yaml.safe_load((root / relative).read_text())


def _override(document: dict[str, Any], overrides: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    for keys, value in overrides.items():
        node = document
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return document


def serve_config(root: Path = ROOT) -> dict[str, Any]:
    """The Serve config the RayService deploys."""
    return _override(_read(root, "deploy/serve.yaml"), SERVE_OVERRIDES)


def sites_cluster_spec(root: Path = ROOT) -> dict[str, Any]:
    """The RayCluster spec the federated RayJob starts."""
    spec: dict[str, Any] = _read(root, KUBERAY / "raycluster-sites.yaml")["spec"]
    return spec


def federated_config(root: Path = ROOT) -> dict[str, Any]:
    """The federated job's config on the cluster."""
    return _override(_read(root, "configs/federated.yaml"), FEDERATED_OVERRIDES)


BLOCKS = (
    Block(KUBERAY / "rayservice-report.yaml", ("spec", "serveConfigV2"), serve_config, True),
    Block(KUBERAY / "rayjob-federated.yaml", ("spec", "rayClusterSpec"), sites_cluster_spec, False),
    Block(
        KUBERAY / "core" / "configmap-federated.yaml",
        ("data", "federated.yaml"),
        federated_config,
        True,
    ),
)


class _IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as Kubernetes manifests are usually written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(value: Any) -> str:
    return yaml.dump(
        value, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=False, width=1000
    )


def current(block: Block, root: Path = ROOT) -> Any:
    """The block's value as the manifest holds it now (a literal block parsed as YAML)."""
    node = _read(root, block.file)
    for key in block.path:
        node = node.get(key) if isinstance(node, dict) else None
    return yaml.safe_load(node) if block.literal and isinstance(node, str) else node


def drift(root: Path = ROOT) -> list[Path]:
    """The files whose generated block differs from its source."""
    return [block.file for block in BLOCKS if current(block, root) != block.expected(root)]


def replace_block(text: str, key: str, body: str, *, literal: bool) -> str:
    """``text`` with the value under the one line ``key:`` replaced by ``body`` (YAML).

    The value is every following line indented deeper than the key (blank lines inside it
    included); the lines after it, comments and blank lines before the next key, stay.
    """
    pattern = re.compile(rf"^(?P<indent> *){re.escape(key)}:(?: [|>][-+]?| \{{\}})?[ \t]*$")
    lines = text.splitlines(keepends=True)
    found = [
        (i, match) for i, line in enumerate(lines) if (match := pattern.match(line.rstrip("\n")))
    ]
    if len(found) != 1:
        raise ValueError(f"expected one line `{key}:` to render into, found {len(found)}")
    start, match = found[0]
    indent = len(match["indent"])
    end = start + 1
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and len(lines[i]) - len(lines[i].lstrip(" ")) <= indent:
            break
        if stripped:
            end = i + 1
    pad = " " * (indent + 2)
    value = "".join(pad + line if line.strip() else line for line in body.splitlines(True))
    head = f"{' ' * indent}{key}:{' |' if literal else ''}\n"
    return "".join([*lines[:start], head, value, *lines[end:]])


def render(root: Path = ROOT) -> list[Path]:
    """Rewrite every drifted block from its source; returns the files written."""
    written = []
    for block in BLOCKS:
        if current(block, root) == block.expected(root):
            continue
        path = root / block.file
        body = _dump(block.expected(root))
        path.write_text(
            replace_block(path.read_text(), block.path[-1], body, literal=block.literal)
        )
        written.append(block.file)
    return written


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a block differs"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = drift(root)
        for file in stale:
            print(f"{file} differs from its source: run python deploy/kuberay/render.py")
        return 1 if stale else 0
    for file in render(root):
        print(f"wrote {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
