"""The development C2PA signer of ``make run``: a key and certificate made once into DATA_DIR.

C2PA refuses to sign with a self-signed certificate, so this makes a small private authority: a
self-signed root ("ca.pem") and a signing certificate it issued with the profile C2PA asks for
(digitalSignature key usage, the emailProtection extended key usage, not a CA). Validators read
and check the manifest and call its signer untrusted, unless told to trust ca.pem. Never in
production: there the operator's own key and certificate sign (README, "Provenance").
"""

from __future__ import annotations

import datetime
import functools
import os
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FOLDER = "c2pa-dev"
ORGANISATION = "Seedream API development (untrusted)"
VALID_DAYS = 3650


@functools.lru_cache(maxsize=2)
def key_and_chain(data_dir: Path) -> tuple[str, str]:
    """The development signer's PEM key and certificate chain, made on first use."""
    folder = Path(data_dir) / FOLDER
    if not (folder / "signer.pem").exists():
        _make(folder)
    key_pem = (folder / "key.pem").read_text()
    return key_pem, (folder / "signer.pem").read_text()


def _make(folder: Path) -> None:
    # Made in a folder of its own, then renamed into place: two processes starting at once
    # (web and worker) end up with one signer, the first one renamed.
    folder.parent.mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=folder.parent))
    try:
        key_pem, signer_pem, ca_pem = make_pems()
        fd = os.open(draft / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key_pem)
        (draft / "signer.pem").write_text(signer_pem)
        (draft / "ca.pem").write_text(ca_pem)
        os.rename(draft, folder)
    except OSError:
        if not (folder / "signer.pem").exists():
            raise
    finally:
        shutil.rmtree(draft, ignore_errors=True)


def make_pems() -> tuple[str, str, str]:
    """A new (signing key, signing certificate, root certificate), each as PEM."""
    now = datetime.datetime.now(datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Seedream API development root")
    root = (
        _certificate(root_name, root_name, root_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(key_cert_sign=True, crl_sign=True, digital_signature=False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        _certificate(_name("Seedream API development signer"), root_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, _pem(signer), _pem(root)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _key_usage(
    *, digital_signature: bool, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
