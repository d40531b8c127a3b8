"""Mutual TLS 1.3 for the federation's gRPC channels.

Both ends authenticate with certificates from the federation CA (:mod:`securemed.pki`); the
aggregator requires a client certificate, and takes a hospital's identity from it
(:func:`caller_identity`), never from a field the hospital sends.

Revocation is checked per call, not in the handshake: gRPC Python's server credentials take
no revocation list, so a revoked hospital still completes the TLS handshake, and
:func:`caller_identity` refuses it against a :class:`RevocationList` before any RPC does work.

TLS 1.3 only. grpcio 1.85 lets a Python server choose neither a minimum TLS version (the
option is still an open proposal upstream, grpc/grpc#43080) nor an SSL context. It does honour
gRPC's ``GRPC_SSL_CIPHER_SUITES`` setting, which governs TLS 1.2 and older only (TLS 1.3 suites
are fixed by BoringSSL). We set it to a single pre-shared-key suite: gRPC never configures a PSK,
so no TLS 1.2 handshake can agree on a cipher and every one fails, whatever certificates the
peer holds, while TLS 1.3 is untouched. gRPC reads the setting once, when it is first imported,
so this package sets it (over any inherited value) before it imports ``grpc`` and, for processes
where something imported ``grpc`` first, :func:`refuses_tls12` checks a running server with every
TLS 1.2 suite the local OpenSSL can offer, and the server refuses to serve if a TLS 1.2
handshake gets past its first message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from pathlib import Path

import grpc
from cryptography import x509

from securemed.errors import CertificateRevoked, ConfigError, UnknownHospital
from securemed.pki import FederationIdentity, verify_revocation_list

log = logging.getLogger(__name__)

#: what the aggregator's certificate names by default (``pki init --server-name``)
DEFAULT_SERVER_NAME = "localhost"

_TLS_RECORD_ALERT = 0x15


def server_credentials(identity: FederationIdentity) -> grpc.ServerCredentials:
    """Serve with the aggregator's certificate; require a client certificate from our CA."""
    return grpc.ssl_server_credentials(
        [(identity.key_pem, identity.certificate_pem)],
        root_certificates=identity.ca_pem,
        require_client_auth=True,
    )


def channel_credentials(identity: FederationIdentity) -> grpc.ChannelCredentials:
    """Dial with a hospital's certificate; trust only the federation CA for the server."""
    return grpc.ssl_channel_credentials(
        root_certificates=identity.ca_pem,
        private_key=identity.key_pem,
        certificate_chain=identity.certificate_pem,
    )


def channel_name_options(server_name: str | None) -> list[tuple[str, str]]:
    """Check the server's certificate for ``server_name`` whatever address is dialled.

    Hospitals often dial an IP address that the aggregator's certificate does not list; the
    name the certificate does list is then given here (the certificate is still verified).
    """
    return [] if server_name is None else [("grpc.ssl_target_name_override", server_name)]


class RevocationList:
    """The federation CA's revocation list, read from a file and re-read when the file changes.

    ``securemed pki revoke`` replaces the file in one rename; checking its inode, size and
    modification time on every call makes a revocation take effect at the next call, without
    restarting the aggregator, for the cost of one ``stat``. A list is used only once the
    federation CA's signature on it checks out. Once a list is in force, a later file that is
    missing, unreadable, not signed by the CA, or older (a lower CRL number) is logged and
    ignored, and the list in force stays: each list the CA signs holds every earlier
    revocation, so keeping it lets no revoked hospital back, while a bad file does not stop
    the federation.

    Args:
        path: the CA folder's ``revoked.crl.pem`` (PEM), or a copy kept current.
        ca_pem: the federation CA certificate that must have signed it.

    Raises:
        ConfigError: at construction, the file is missing or not a CRL the CA signed.
    """

    def __init__(self, path: Path, *, ca_pem: bytes) -> None:
        self._path = path
        self._ca_pem = ca_pem
        try:
            self._stamp: tuple[int, int, int] | None = self._file_stamp()
            self._revocations = verify_revocation_list(path.read_bytes(), ca_pem)
        except FileNotFoundError:
            raise ConfigError(
                f"{path} is missing: point to the revoked.crl.pem of the federation's CA folder"
            ) from None
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    def is_revoked(self, certificate: x509.Certificate) -> bool:
        """Whether the CA revoked ``certificate`` (by serial), as of the file's last change."""
        self._refresh()
        return certificate.serial_number in self._revocations.serials

    def _file_stamp(self) -> tuple[int, int, int]:
        stat = os.stat(self._path)
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _refresh(self) -> None:
        try:
            stamp: tuple[int, int, int] | None = self._file_stamp()
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            newer = verify_revocation_list(self._path.read_bytes(), self._ca_pem)
        except (OSError, ConfigError) as error:
            log.error(
                "revocation list unusable; the last verified one stays in force",
                extra={"path": str(self._path), "detail": str(error)},
            )
            return
        if newer.number < self._revocations.number:
            log.error(
                "revocation list older than the one in force; ignored",
                extra={"path": str(self._path), "crl_number": newer.number},
            )
            return
        self._revocations = newer
        log.info(
            "revocation list reloaded",
            extra={"crl_number": newer.number, "revoked": len(newer.serials)},
        )


def caller_identity(
    context: grpc.ServicerContext | grpc.aio.ServicerContext,
    revocations: RevocationList | None = None,
) -> tuple[str, bytes]:
    """The calling hospital's name (its certificate's common name) and its certificate PEM.

    Raises:
        UnknownHospital: the call carries no verified client certificate (a server without
            TLS, or a bug): nobody is trusted on their word.
        CertificateRevoked: ``revocations`` lists the caller's certificate.
    """
    auth = context.auth_context()
    names = auth.get("x509_common_name", [])
    certificates = auth.get("x509_pem_cert", [])
    if len(names) != 1 or len(certificates) != 1:
        raise UnknownHospital("the call carries no verified client certificate")
    name, pem = names[0].decode(), certificates[0]
    if revocations is not None:
        certificate = x509.load_pem_x509_certificate(pem)
        if revocations.is_revoked(certificate):
            raise CertificateRevoked(
                f"the certificate of {name!r} (serial {certificate.serial_number:x}) was "
                "revoked by the federation CA; the hospital must enroll again with a new key"
            )
    return name, pem


def tls12_probe_context() -> ssl.SSLContext:
    """A TLS 1.2-only client context that offers every TLS 1.2 suite the local OpenSSL can.

    Python's default context offers only the dozen or so suites it considers modern; a server
    allowed any other one (a CBC or SHA-1 suite, a NULL cipher, anonymous Diffie-Hellman) would
    pass a probe that offered only those. ``@SECLEVEL=0`` lifts OpenSSL's own floor.
    Pre-shared-key and SRP suites are left out by OpenSSL itself, as the probe holds no key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    context.set_alpn_protocols(["h2"])
    return context


def refuses_tls12(host: str, port: int, *, timeout_s: float = 5.0) -> bool:
    """Whether the server at ``host:port`` answers a TLS 1.2 ClientHello with an alert.

    Sends a real TLS 1.2-only ClientHello offering every TLS 1.2 suite
    (:func:`tls12_probe_context`, through a memory BIO) and reads the first record back: a
    ServerHello means TLS 1.2 was accepted, an alert that it was not.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls12_probe_context().wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    with socket.create_connection((host, port), timeout=timeout_s) as connection:
        connection.sendall(outgoing.read())
        first = connection.recv(1)
    return not first or first[0] == _TLS_RECORD_ALERT
