"""SecureMed operator commands that need no Ray (the `securemed` console script).

securemed pki init --out certs --hospitals 4
securemed pki init --out certs --hospitals st-marys,general --server-name agg.example.org
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from securemed.errors import SecureMedError
from securemed.pki import DEFAULT_SERVER_NAMES, init_pki


def _hospital_names(value: str) -> list[str]:
    """``4`` means hospital-1..hospital-4 (the job's names); otherwise a comma-separated list."""
    if value.isdigit():
        return [f"hospital-{i + 1}" for i in range(int(value))]
    return [name.strip() for name in value.split(",") if name.strip()]


def _pki_init(args: argparse.Namespace) -> int:
    layout = init_pki(
        args.out,
        _hospital_names(args.hospitals),
        server_names=args.server_name or DEFAULT_SERVER_NAMES,
        valid_days=args.days,
    )
    print(f"federation CA and certificates written to {layout.root}")
    print(f"keep {layout.ca_key} offline; give each hospital only its own .crt/.key and ca.crt")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="securemed", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pki = commands.add_parser("pki", help="the federation's certificate authority")
    pki_commands = pki.add_subparsers(dest="pki_command", required=True)
    init = pki_commands.add_parser("init", help="create a CA and issue every certificate")
    init.add_argument("--out", type=Path, required=True, help="folder to create (must be new)")
    init.add_argument(
        "--hospitals", default="4", help="a count (hospital-1..N) or comma-separated names"
    )
    init.add_argument(
        "--server-name",
        action="append",
        help="aggregator host name or IP for its certificate (repeatable; default localhost, "
        "127.0.0.1)",
    )
    init.add_argument("--days", type=int, default=365, help="validity of every certificate")
    init.set_defaults(handler=_pki_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
