"""TLS on the lab LAN: a local certificate authority and a server certificate for nginx.

`cact tls init` (app/cli/tls.py) calls :func:`init`. The lab has no public DNS name, so a
public CA cannot issue a certificate; instead the server makes its own small CA once, the lab
PCs trust that CA (instructions from :func:`trust_instructions`), and every server certificate
it signs later (new address, renewal) is trusted without touching the PCs again.

Files in the TLS folder (default ``/etc/cact/tls``, where deploy/nginx-cact.conf looks):

- ``cact-ca.crt`` (0644): the CA certificate, the one file copied to the lab PCs;
- ``cact-ca.key`` (0600): the CA's private key, needed only to sign the next server certificate;
- ``server.crt`` (0644): the server certificate followed by the CA certificate (nginx sends the
  chain as it stands in this file);
- ``server.key`` (0600): the server's private key. It stays 0600 and owned by whoever ran the
  command (root in production): nginx's master process reads keys as root before it hands the
  connections to its ``www-data`` workers, so no group read is needed and none is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DIR = Path("/etc/cact/tls")
CA_CERT = "cact-ca.crt"
CA_KEY = "cact-ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"

# Browsers (Apple's rule, followed by Chrome) refuse server certificates valid longer than this.
MAX_SERVER_DAYS = 825
CA_DAYS = 3650
# Lab PCs' clocks are often a little behind the server's: a certificate "not yet valid" there
# would block every login, so validity starts a day early.
BACKDATE = dt.timedelta(days=1)

_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class TlsError(Exception):
    """A problem the operator can fix; the message says what, where and how."""


@dataclass
class TlsResult:
    """What :func:`init` wrote."""

    directory: Path
    ca_created: bool
    ca_cert: Path
    server_cert: Path
    server_key: Path
    not_after: dt.datetime
    ca_not_after: dt.datetime
    ca_fingerprint: str
    hosts: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)


def check_hostname(name: str) -> str:
    """Return ``name`` lower-cased if it is a valid DNS name (``cact.lab``, ``server1``);
    raise :class:`TlsError` otherwise."""
    value = name.strip().rstrip(".").lower()
    labels = value.split(".")
    if not value or len(value) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise TlsError(f"--host {name!r} is not a valid host name (letters, digits and '-' "
                       "between dots, e.g. cact.lab). Give IP addresses with --ip.")
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value)
        raise TlsError(f"--host {name!r} is an IP address: give it with --ip {name}.")
    return value


def check_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse an IP address for the certificate; raise :class:`TlsError` if it is not one."""
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise TlsError(f"--ip {value!r} is not an IP address (e.g. 192.168.10.5). "
                       "Give names with --host.") from None


def ca_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as Windows and browsers show it (AA:BB:...), to compare by eye on a
    lab PC that the CA installed there is this one."""
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode`` so that a reader sees the old file or the new
    one, never half of one; a key is never readable by others, not even for a moment."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_ca(label: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"CACT lab CA {label}"[:64]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CACT"),
    ])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now - BACKDATE + dt.timedelta(days=CA_DAYS))
        # pathlen 0: this CA signs server certificates only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _load_ca(ca_cert: Path, ca_key: Path, now: dt.datetime):
    try:
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(f"Cannot read the CA in {ca_cert.parent} ({exc}). Fix the files, or run "
                       "again with --force to make a new CA (every lab PC must then trust "
                       "the new cact-ca.crt).") from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise TlsError(f"{ca_key} does not belong to {ca_cert}. Restore the matching pair, or "
                       "use --force to make a new CA (the lab PCs must trust it again).")
    if cert.not_valid_after_utc <= now + dt.timedelta(days=1):
        raise TlsError(f"The CA in {ca_cert} expired on {cert.not_valid_after_utc:%Y-%m-%d}. "
                       "Run again with --force to make a new CA and install the new "
                       "cact-ca.crt on the lab PCs.")
    return key, cert


def init(
    directory: Path = DEFAULT_DIR,
    *,
    hosts: list[str],
    ips: list[str],
    days: int = MAX_SERVER_DAYS,
    force: bool = False,
    now: dt.datetime | None = None,
) -> TlsResult:
    """Make (or reuse) the lab CA in ``directory`` and sign a new server certificate for the
    given host names and IP addresses (subjectAltName; browsers ignore the common name).

    An existing CA (``cact-ca.crt`` + ``cact-ca.key``) is reused so the lab PCs that already
    trust it need nothing new; ``force`` makes a new CA. The server certificate is always new,
    valid ``days`` (at most 825) but never past the CA's own end.
    """
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    names = list(dict.fromkeys(check_hostname(h) for h in hosts))
    addresses = list(dict.fromkeys(check_ip(i) for i in ips))
    if not names and not addresses:
        raise TlsError("Give the name and/or address the lab PCs use to reach the server: "
                       "--host cact.lab --ip 192.168.10.5 (both may be repeated).")
    if not 1 <= days <= MAX_SERVER_DAYS:
        raise TlsError(f"--days {days}: a server certificate may last 1 to {MAX_SERVER_DAYS} "
                       "days (browsers refuse longer ones).")
    directory = Path(directory)
    try:
        if not directory.is_dir():
            directory.mkdir(parents=True)
            # 0755 whatever root's umask: nginx's workers (www-data) serve cact-ca.crt from
            # here as /ca.crt; the keys inside are 0600 on their own.
            directory.chmod(0o755)
    except OSError as exc:
        raise TlsError(f"Cannot create {directory} ({exc.strerror}). Run as root (sudo) or "
                       "choose another folder with --dir.") from None
    if not os.access(directory, os.W_OK):
        raise TlsError(f"{directory} is not writable. Run as root (sudo) or choose another "
                       "folder with --dir.")

    ca_cert_path, ca_key_path = directory / CA_CERT, directory / CA_KEY
    have = [p.exists() for p in (ca_cert_path, ca_key_path)]
    label = names[0] if names else str(addresses[0])
    if all(have) and not force:
        ca_key, ca = _load_ca(ca_cert_path, ca_key_path, now)
        ca_created = False
    elif any(have) and not force:
        missing = ca_key_path if have[0] else ca_cert_path
        raise TlsError(f"{missing} is missing, so the CA in {directory} cannot sign. Restore it "
                       "from the backup, or use --force to make a new CA (the lab PCs must "
                       "then trust the new cact-ca.crt).")
    else:
        ca_key, ca = _new_ca(label, now)
        # The key first: a CA certificate on disk without its key would stop the next run.
        _write_atomic(ca_key_path, _key_pem(ca_key), 0o600)
        _write_atomic(ca_cert_path, ca.public_bytes(serialization.Encoding.PEM), 0o644)
        ca_created = True

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    start = now - BACKDATE
    not_after = min(start + dt.timedelta(days=days), ca.not_valid_after_utc)
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    san += [x509.IPAddress(a) for a in addresses]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label[:64])]))
        .issuer_name(ca.subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM)
    server_cert_path, server_key_path = directory / SERVER_CERT, directory / SERVER_KEY
    # Key before certificate: nginx reloaded in between finds a new key with the old
    # certificate only for an instant, and both files are whole at every moment.
    _write_atomic(server_key_path, _key_pem(key), 0o600)
    _write_atomic(server_cert_path, chain, 0o644)
    return TlsResult(
        directory=directory, ca_created=ca_created, ca_cert=ca_cert_path,
        server_cert=server_cert_path, server_key=server_key_path, not_after=not_after,
        ca_not_after=ca.not_valid_after_utc, ca_fingerprint=ca_fingerprint(ca),
        hosts=names, ips=[str(a) for a in addresses],
    )


def trust_instructions(result: TlsResult) -> str:
    """How to make the lab PCs trust the CA, Indonesian first, then English."""
    ca = result.ca_cert
    fetch = ", ".join([f"http://{h}/ca.crt" for h in result.hosts[:1]]
                      + [f"http://{i}/ca.crt" for i in result.ips[:1]])
    where = ", ".join([f"https://{h}/" for h in result.hosts]
                      + [f"https://{i}/" for i in result.ips])
    return f"""\
Pasang sertifikat CA di setiap PC lab / Install the CA certificate on every lab PC:
  File: {ca}   (sidik jari / fingerprint SHA-256: {result.ca_fingerprint})
  Salin lewat flashdisk atau folder bersama / copy it by USB stick or a shared folder
  (hanya cact-ca.crt, JANGAN cact-ca.key / only cact-ca.crt, NEVER cact-ca.key),
  atau unduh di PC / or download it on the PC: {fetch}
  (bandingkan sidik jarinya / compare its fingerprint with the one above).

  Windows (Edge, Chrome): sebagai Administrator / as Administrator:
      certutil -addstore -f Root cact-ca.crt
    atau klik dua kali / or double-click cact-ca.crt -> Install Certificate -> Local Machine
    -> "Trusted Root Certification Authorities".
  Firefox (penyimpanan sendiri / its own store): Settings -> Privacy & Security ->
    Certificates -> View Certificates -> Authorities -> Import -> centang / tick
    "Trust this CA to identify websites"; untuk banyak PC / for many PCs: policies.json
    {{"policies": {{"Certificates": {{"Install": ["C:\\\\cact\\\\cact-ca.crt"]}}}}}}
    (atau / or "ImportEnterpriseRoots": true setelah / after certutil).
  Linux (Debian/Ubuntu): sudo cp cact-ca.crt /usr/local/share/ca-certificates/ &&
    sudo update-ca-certificates; Chrome/Chromium di Linux / on Linux (NSS):
    certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n "CACT lab CA" -i cact-ca.crt
  ChromeOS: Settings -> Privacy and security -> Security -> Manage certificates ->
    Authorities -> Import (atau kebijakan admin / or admin policy).

Lalu buka / Then open: {where}
  Periksa bahwa browser tidak memberi peringatan / check that the browser gives no warning.
  Aktifkan cookie aman / turn on secure cookies: CACT_COOKIE_SECURE=always, lalu / then
  restart cact; aktifkan pengalihan HTTPS di situs nginx / enable the HTTPS redirect in the
  nginx site (docs/security.md, "TLS on the lab LAN"), lalu / then:
    sudo nginx -t && sudo systemctl reload nginx"""
