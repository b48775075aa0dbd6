"""`cact tls init` (app/ops/tls.py): what the certificates say, where the files go with which
modes, reuse of the lab CA, and the refusals an operator can act on. The certificates are
checked with the cryptography package and by a real TLS handshake with Python's ssl module."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.ops import tls

NOW = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)


def _certs(path):
    return x509.load_pem_x509_certificates(path.read_bytes())


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ca_and_a_server_certificate_browsers_accept(tmp_path):
    result = tls.init(tmp_path / "tls", hosts=["CACT.lab", "cact"], ips=["192.168.10.5"],
                      now=NOW)
    assert result.ca_created
    ca = _certs(result.ca_cert)[0]
    leaf, chained_ca = _certs(result.server_cert)
    assert chained_ca == ca  # nginx sends the chain as the file holds it

    assert ca.subject.rfc4514_string().startswith("O=CACT,CN=CACT lab CA cact.lab")
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == dt.timedelta(days=3650)

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["cact.lab", "cact"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.168.10.5"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=825)
    assert leaf.not_valid_before_utc < NOW  # a lab PC whose clock is behind still accepts it
    leaf.verify_directly_issued_by(ca)

    assert _mode(result.ca_cert) == 0o644 and _mode(result.server_cert) == 0o644
    assert _mode(tmp_path / "tls" / "cact-ca.key") == 0o600
    assert _mode(result.server_key) == 0o600
    assert _mode(tmp_path / "tls") == 0o755
    assert not [p for p in (tmp_path / "tls").iterdir() if p.name.startswith(".")]


def test_a_real_handshake_verifies_with_the_ca_for_the_name_and_the_address(tmp_path):
    result = tls.init(tmp_path, hosts=["cact.lab"], ips=["127.0.0.1"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(result.server_cert, result.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(count: int) -> None:
        for _ in range(count):
            conn, _addr = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, args=(3,), daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(result.ca_cert))
    for name in ("cact.lab", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client.wrap_socket(raw, server_hostname=name) as conn:
            conn.sendall(b"x")
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        client.wrap_socket(raw, server_hostname="elsewhere.lab")
    thread.join(timeout=10)
    listener.close()


def test_a_second_run_reuses_the_ca_and_force_replaces_it(tmp_path):
    first = tls.init(tmp_path, hosts=["cact.lab"], ips=[], now=NOW)
    ca_before = first.ca_cert.read_bytes()
    leaf_before = first.server_cert.read_bytes()

    second = tls.init(tmp_path, hosts=[], ips=["10.0.0.2"], days=30, now=NOW)
    assert not second.ca_created and second.ca_cert.read_bytes() == ca_before
    assert second.server_cert.read_bytes() != leaf_before
    leaf = _certs(second.server_cert)[0]
    leaf.verify_directly_issued_by(_certs(first.ca_cert)[0])
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=30)

    third = tls.init(tmp_path, hosts=["cact.lab"], ips=[], force=True, now=NOW)
    assert third.ca_created and third.ca_cert.read_bytes() != ca_before
    assert third.ca_fingerprint != first.ca_fingerprint


def test_the_server_certificate_never_outlives_the_ca(tmp_path):
    tls.init(tmp_path, hosts=["cact.lab"], ips=[], now=NOW)
    late = NOW + dt.timedelta(days=3400)  # the CA has about 249 days left
    result = tls.init(tmp_path, hosts=["cact.lab"], ips=[], now=late)
    assert result.not_after == result.ca_not_after
    expired = NOW + dt.timedelta(days=3700)
    with pytest.raises(tls.TlsError, match="expired.*--force"):
        tls.init(tmp_path, hosts=["cact.lab"], ips=[], now=expired)


@pytest.mark.parametrize(("hosts", "ips", "days", "message"), [
    ([], [], 825, "Give the name and/or address"),
    (["bad_name.lab"], [], 825, "not a valid host name"),
    (["10.1.1.1"], [], 825, "give it with --ip 10.1.1.1"),
    ([], ["cact.lab"], 825, "not an IP address"),
    (["cact.lab"], [], 826, "1 to 825 days"),
])
def test_refusals_say_what_to_do(tmp_path, hosts, ips, days, message):
    with pytest.raises(tls.TlsError, match=message):
        tls.init(tmp_path / "tls", hosts=hosts, ips=ips, days=days)
    assert not (tmp_path / "tls" / "server.crt").exists()


def test_a_ca_without_its_key_is_not_silently_replaced(tmp_path):
    first = tls.init(tmp_path, hosts=["cact.lab"], ips=[])
    (tmp_path / "cact-ca.key").unlink()
    with pytest.raises(tls.TlsError, match="cact-ca.key is missing.*--force"):
        tls.init(tmp_path, hosts=["cact.lab"], ips=[])
    other = tmp_path / "other"
    tls.init(other, hosts=["x.lab"], ips=[])
    (tmp_path / "cact-ca.key").write_bytes((other / "cact-ca.key").read_bytes())
    with pytest.raises(tls.TlsError, match="does not belong to"):
        tls.init(tmp_path, hosts=["cact.lab"], ips=[])
    assert first.ca_cert.exists()


def test_the_command_prints_how_to_trust_the_ca_and_audits(tmp_path):
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": ""}
    run = [sys.executable, "-m", "app.cli"]
    assert subprocess.run([*run, "db", "upgrade"], env=env, capture_output=True,
                          timeout=120).returncode == 0
    done = subprocess.run([*run, "tls", "init", "--host", "cact.lab", "--ip", "127.0.0.1",
                           "--dir", str(tmp_path / "tls")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "CA baru / new CA" in out and "recorded in the audit log (tls.init)" in out
    for how in ("certutil -addstore -f Root cact-ca.crt", "update-ca-certificates",
                "policies.json", "ChromeOS", "CACT_COOKIE_SECURE=always",
                "https://cact.lab/", "https://127.0.0.1/"):
        assert how in out, how
    fingerprint = tls.ca_fingerprint(_certs(tmp_path / "tls" / "cact-ca.crt")[0])
    assert fingerprint in out
    tail = subprocess.run([*run, "audit", "tail", "-n", "1"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "tls.init" in tail.stdout

    refused = subprocess.run([*run, "tls", "init", "--dir", str(tmp_path / "tls")], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "--host cact.lab --ip" in refused.stderr and "Traceback" not in refused.stderr


def test_as_root_the_services_sqlite_file_is_left_alone(tmp_path):
    """`sudo cact tls init` on a server whose SQLite database belongs to the service user:
    the certificate is made, the database files are not touched (a root-owned -wal or -shm
    file would lock the service out), and the output says the record was skipped."""
    if os.geteuid() != 0:
        from tests.conftest import unavailable

        unavailable("needs root to give the database file to another user")
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": ""}
    run = [sys.executable, "-m", "app.cli"]
    assert subprocess.run([*run, "db", "upgrade"], env=env, capture_output=True,
                          timeout=120).returncode == 0
    for path in (tmp_path / "data").iterdir():
        os.chown(path, 65534, 65534)  # nobody, standing in for the service user
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    done = subprocess.run([*run, "tls", "init", "--ip", "127.0.0.1", "--dir",
                           str(tmp_path / "tls")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "not recorded in the audit log: the database belongs to another user" in done.stdout
    assert (tmp_path / "tls" / "server.crt").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
    assert all(p.stat().st_uid == 65534 for p in (tmp_path / "data").iterdir())
