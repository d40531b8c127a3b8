"""The cryptography a secure-aggregation round uses, on the ``cryptography`` library.

* X25519 key agreement, one ephemeral pair for encrypting shares (``c``) and one for masks
  (``s``), fresh every round so a key recovered after a dropout is worthless in the next.
* HKDF-SHA256 turns each agreed secret into a 32-byte key bound to its purpose, the round and
  the two hospitals, so no key is ever used in two roles.
* AES-256-GCM encrypts shares hospital-to-hospital; the associated data names the round, the
  sender and the recipient, so a ciphertext replayed into another round or redirected to
  another hospital fails authentication.
* ECDSA P-256 with SHA-256 signs a hospital's advertised keys with its federation certificate's
  key, and peers check the signature against that certificate and the federation CA: the
  aggregator can route keys but cannot substitute its own.
"""

from __future__ import annotations

import datetime
import functools
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securemed.errors import ProtocolViolation

_NONCE_BYTES = 12


def new_x25519() -> tuple[bytes, bytes]:
    """A fresh (private, public) X25519 pair as raw 32-byte strings."""
    private = X25519PrivateKey.generate()
    return _raw_private(private), _raw_public(private.public_key())


def public_of(private: bytes) -> bytes:
    return _raw_public(X25519PrivateKey.from_private_bytes(private).public_key())


def agree(private: bytes, peer_public: bytes, *, purpose: bytes, context: bytes) -> bytes:
    """A 32-byte key both ends derive: HKDF(X25519(private, peer_public)) bound to ``context``."""
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        shared = X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError as error:
        raise ProtocolViolation(
            f"a neighbour's public key is not a valid X25519 key: {error}"
        ) from None
    return HKDF(
        hashes.SHA256(), 32, salt=None, info=b"securemed-secagg/" + purpose + b"/" + context
    ).derive(shared)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM: a random 96-bit nonce, then ciphertext and tag."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """Decrypt :func:`seal`'s output; a changed, replayed or misrouted ciphertext is refused."""
    if len(sealed) < _NONCE_BYTES + 16:
        raise ProtocolViolation("an encrypted share is too short to be genuine")
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated)
    except InvalidTag:
        raise ProtocolViolation(
            "an encrypted share failed authentication (tampered, replayed from another round, "
            "or meant for another hospital)"
        ) from None


def sign(private_key_pem: bytes, message: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProtocolViolation("a federation key must be an ECDSA key")
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


@functools.lru_cache(maxsize=1024)
def _certificate_key(certificate_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The key of a certificate, parsed once: a round checks each hospital's signatures
    several times (advert, dealt shares, survivor set)."""
    public = x509.load_pem_x509_certificate(certificate_pem).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ProtocolViolation("a federation certificate must hold an ECDSA key")
    return public


def verify_signed_by(certificate_pem: bytes, message: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``message`` with the certificate's key; ProtocolViolation if not."""
    public = _certificate_key(certificate_pem)
    try:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ProtocolViolation(
            "a signature does not verify against the sender's certificate"
        ) from None


def verify_member_certificate(certificate_pem: bytes, ca_pem: bytes, hospital: str) -> None:
    """Check that the CA issued this certificate to ``hospital``, as a hospital, valid now.

    The role matters: the aggregator's certificate comes from the same CA (for server
    authentication), and an aggregator that listed itself as a participant could otherwise
    collect shares meant for hospitals. Only a client-authentication certificate, the kind
    :mod:`securemed.pki` issues to hospitals, may take part.
    """
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ProtocolViolation(
            f"the certificate offered for {hospital!r} was not issued by the federation CA"
        ) from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [str(name.value) for name in names] != [hospital]:
        raise ProtocolViolation(f"the certificate offered for {hospital!r} names someone else")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if list(usages) != [ExtendedKeyUsageOID.CLIENT_AUTH]:
        raise ProtocolViolation(
            f"the certificate offered for {hospital!r} is not a hospital's (client-auth) "
            "certificate; only hospitals take part in a secure sum"
        )
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ProtocolViolation(f"the certificate of {hospital!r} is not valid now")


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
