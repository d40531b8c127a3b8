"""Cryptography of served reports: ECIES sealing inside a signed, versioned envelope."""
