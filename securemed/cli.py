"""SecureMed operator commands that need no Ray (the `securemed` console script).

securemed pki ca --out ca --server-name agg.example.org                 # operator
securemed pki request --name st-marys --out st-marys                    # each hospital
securemed pki sign --pki ca --csr st-marys.csr --out st-marys.crt       # operator
securemed pki revoke --pki ca --name st-marys                           # operator
securemed pki init --out certs --hospitals 4          # local simulation: every key in one folder
securemed keygen --out keys
securemed decrypt --key keys/clinician.key --service-key service.pub.pem envelope.json
securemed serve-init --state var/serve
securemed eval-phi --notes 500 --seed 0 --output phi-eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from securemed.crypto.sealing import (
    EnvelopeOpener,
    ReplayCache,
    generate_clinician_key,
)
from securemed.durable import write_private_file
from securemed.errors import EnvelopeRejected, SecureMedError
from securemed.pki import (
    CRL_VALID_DAYS,
    DEFAULT_SERVER_NAMES,
    PkiLayout,
    create_ca,
    init_pki,
    request_certificate,
    revoke_certificate,
    sign_request,
)
from securemed.serving.state import init_serving_state_with_token_file


def _hospital_names(value: str) -> list[str]:
    """``4`` means hospital-1..hospital-4 (the job's names); otherwise a comma-separated list."""
    if value.isdigit():
        return [f"hospital-{i + 1}" for i in range(int(value))]
    return [name.strip() for name in value.split(",") if name.strip()]


def _pki_ca(args: argparse.Namespace) -> int:
    layout = create_ca(
        args.out, server_names=args.server_name or DEFAULT_SERVER_NAMES, valid_days=args.days
    )
    print(f"federation CA and the aggregator's certificate written to {layout.root}")
    print(f"keep {layout.ca_key} offline; hospitals enroll with `securemed pki request`")
    return 0


def _pki_init(args: argparse.Namespace) -> int:
    print(
        "note: pki init is for local simulation: it makes every hospital's key here; a real "
        "federation uses `pki ca`, then `pki request` at each hospital and `pki sign`"
    )
    layout = init_pki(
        args.out,
        _hospital_names(args.hospitals),
        server_names=args.server_name or DEFAULT_SERVER_NAMES,
        valid_days=args.days,
    )
    print(f"federation CA and certificates written to {layout.root}")
    print(f"keep {layout.ca_key} offline; give each hospital only its own .crt/.key and ca.crt")
    return 0


def _pki_request(args: argparse.Namespace) -> int:
    files = request_certificate(args.out, args.name)
    print(f"private key: {files.key} (mode 0600; it never leaves this machine)")
    print(f"signing request: {files.csr} (send it to the federation's operator)")
    return 0


def _pki_sign(args: argparse.Namespace) -> int:
    try:
        csr_pem = args.csr.read_bytes()
    except FileNotFoundError:
        raise SecureMedError(f"{args.csr} does not exist") from None
    issued = sign_request(args.pki, csr_pem, args.out, valid_days=args.days)
    print(f"issued {issued.name!r} serial {issued.serial:x}: {args.out}")
    print(f"send it and {PkiLayout(args.pki).ca_cert} to the hospital (neither is secret)")
    return 0


def _pki_revoke(args: argparse.Namespace) -> int:
    revoked = revoke_certificate(
        args.pki, name=args.name, serial=args.serial, crl_days=args.crl_days
    )
    for record in revoked:
        print(f"revoked {record.name!r} serial {record.serial:x}")
    print(f"revocation list updated in {args.pki}; the aggregator refuses it from its next call")
    return 0


def _serial(value: str) -> int:
    """A serial number in hex, as ``pki sign`` prints it (``0x`` and colons allowed)."""
    try:
        return int(value.replace(":", "").removeprefix("0x"), 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hexadecimal serial number: {value!r}") from None


def _keygen(args: argparse.Namespace) -> int:
    """A clinician's secp256k1 key pair: the private key readable by its owner only."""
    args.out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = args.out / f"{args.name}.key", args.out / f"{args.name}.pub"
    if private_path.exists():
        raise SecureMedError(f"{private_path} exists: keys are never overwritten")
    private, public = generate_clinician_key()
    write_private_file(private_path, (private + "\n").encode())
    public_path.write_text(public + "\n")
    print(f"private key: {private_path} (keep it; mode 0600)")
    print(f"public key:  {public_path} (register it with the report service)")
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    """Verify and open a sealed report; the report goes to stdout, nothing else does."""
    try:
        private = args.key.read_text().strip()
        service_key = load_pem_public_key(args.service_key.read_bytes())
        envelope = json.loads(args.envelope.read_text())
    except FileNotFoundError as error:
        raise SecureMedError(f"{error.filename} does not exist") from None
    except (ValueError, UnicodeDecodeError):
        raise SecureMedError(
            "the key, the service key (PEM) or the envelope (JSON) cannot be read"
        ) from None
    if not isinstance(service_key, Ed25519PublicKey):
        raise SecureMedError(f"{args.service_key} is not an Ed25519 public key")
    cache = args.replay_cache or args.key.with_suffix(".opened.db")
    opener = EnvelopeOpener(private, service_key, ReplayCache(cache))
    try:
        opened = opener.open(envelope)
    except EnvelopeRejected as error:
        raise SecureMedError(f"envelope refused ({error.reason}): {error}") from None
    verdict = opened.header.get("verdict")
    if isinstance(verdict, dict) and verdict.get("decision") != "pass":
        codes = ", ".join(str(reason.get("code")) for reason in verdict.get("reasons", ()))
        print(f"safety verdict: {verdict.get('decision')} ({codes})", file=sys.stderr)
    print(opened.report)
    return 0


def _eval_phi(args: argparse.Namespace) -> int:
    """Score the text anonymizer on generated notes; non-zero exit when a target is missed.

    The table and the JSON hold counts and scores only: the notes (synthetic PHI) are never
    printed or written.
    """
    from securemed.phi import PhiAnonymizer
    from securemed.phi.corpus import generate_phi_notes
    from securemed.phi.evaluation import evaluate, format_table

    if args.notes < 1:
        raise SecureMedError("--notes must be at least 1")
    notes = generate_phi_notes(args.notes, args.seed)
    report = evaluate(PhiAnonymizer().find, notes)
    report["seed"] = args.seed
    print(format_table(report))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.output}")
    if not report["meets_targets"]:
        missed = [t for t, row in report["entities"].items() if not _meets(row, report)]
        print(f"below target: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


def _meets(row: dict[str, float], report: dict[str, object]) -> bool:
    return bool(
        row["recall"] >= float(report["recall_target"])  # type: ignore[arg-type]
        and row["precision"] >= float(report["precision_target"])  # type: ignore[arg-type]
    )


def _serve_init(args: argparse.Namespace) -> int:
    """The report service's keys and registry; the admin token to a 0600 file, once."""
    token_file = init_serving_state_with_token_file(args.state)
    print(f"service state created in {args.state}")
    print(f"administrator token: {token_file} (mode 0600): move it to your secret store")
    return 0


def _add_ca_arguments(command: argparse.ArgumentParser) -> None:
    """What ``pki ca`` and ``pki init`` share: both create a CA and the aggregator's certificate."""
    command.add_argument("--out", type=Path, required=True, help="folder to create (must be new)")
    command.add_argument(
        "--server-name",
        action="append",
        help="aggregator host name or IP for its certificate (repeatable; default localhost, "
        "127.0.0.1)",
    )
    command.add_argument("--days", type=int, default=365, help="validity of every certificate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="securemed", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pki = commands.add_parser("pki", help="the federation's certificate authority")
    pki_commands = pki.add_subparsers(dest="pki_command", required=True)
    ca = pki_commands.add_parser(
        "ca", help="create the federation CA and the aggregator's certificate (operator)"
    )
    _add_ca_arguments(ca)
    ca.set_defaults(handler=_pki_ca)
    request = pki_commands.add_parser(
        "request", help="make this hospital's key and a signing request (hospital)"
    )
    request.add_argument("--name", required=True, help="this hospital's name in the federation")
    request.add_argument(
        "--out", type=Path, required=True, help="folder for NAME.key (stays) and NAME.csr"
    )
    request.set_defaults(handler=_pki_request)
    sign = pki_commands.add_parser(
        "sign", help="issue a hospital certificate for a signing request (operator)"
    )
    sign.add_argument("--pki", type=Path, required=True, help="the CA folder")
    sign.add_argument("--csr", type=Path, required=True, help="the hospital's NAME.csr")
    sign.add_argument("--out", type=Path, required=True, help="certificate file to write")
    sign.add_argument("--days", type=int, default=365, help="validity of the certificate")
    sign.set_defaults(handler=_pki_sign)
    revoke = pki_commands.add_parser(
        "revoke", help="revoke a hospital's certificate; the aggregator refuses it at once"
    )
    revoke.add_argument("--pki", type=Path, required=True, help="the CA folder")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", help="revoke every unrevoked certificate of this hospital")
    which.add_argument("--serial", type=_serial, help="revoke one certificate (hex serial)")
    revoke.add_argument(
        "--crl-days",
        type=int,
        default=CRL_VALID_DAYS,
        help=f"days until the list's next update (default {CRL_VALID_DAYS})",
    )
    revoke.set_defaults(handler=_pki_revoke)
    init = pki_commands.add_parser(
        "init",
        help="local simulation only: a CA plus every hospital's key and certificate in one "
        "folder (a real federation enrolls hospitals with request and sign)",
    )
    _add_ca_arguments(init)
    init.add_argument(
        "--hospitals", default="4", help="a count (hospital-1..N) or comma-separated names"
    )
    init.set_defaults(handler=_pki_init)
    keygen = commands.add_parser("keygen", help="a clinician's key pair for sealed reports")
    keygen.add_argument("--out", type=Path, required=True, help="folder for NAME.key/NAME.pub")
    keygen.add_argument("--name", default="clinician", help="file name stem")
    keygen.set_defaults(handler=_keygen)
    decrypt = commands.add_parser("decrypt", help="verify and open a sealed report")
    decrypt.add_argument("--key", type=Path, required=True, help="your private key file")
    decrypt.add_argument(
        "--service-key", type=Path, required=True, help="the report service's Ed25519 key (PEM)"
    )
    decrypt.add_argument(
        "--replay-cache", type=Path, help="envelopes opened so far (default: beside --key)"
    )
    decrypt.add_argument("envelope", type=Path, help="the envelope JSON the service returned")
    decrypt.set_defaults(handler=_decrypt)
    serve_init = commands.add_parser(
        "serve-init", help="the report service's signing key, secrets and clinician registry"
    )
    serve_init.add_argument("--state", type=Path, required=True, help="folder to create")
    serve_init.set_defaults(handler=_serve_init)
    eval_phi = commands.add_parser(
        "eval-phi", help="recall/precision/F2 of the PHI anonymizer on generated notes"
    )
    eval_phi.add_argument("--notes", type=int, default=500, help="how many notes to generate")
    eval_phi.add_argument("--seed", type=int, default=0, help="corpus seed (same seed, same notes)")
    eval_phi.add_argument("--output", type=Path, help="JSON file for the scores (no PHI)")
    eval_phi.set_defaults(handler=_eval_phi)
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
