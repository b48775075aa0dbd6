"""Debian's nginx with the shipped site file (deploy/nginx-cact.conf) in front of
`cact serve --workers 2` on PostgreSQL, as on the lab server: taker login and save, the
proctor's live stream, a 40 MB bank upload, static files, and HTTPS with the certificate from
`cact tls init`. Only the listen ports, the upstream address and the certificate paths of the
site file are replaced; everything else runs as shipped."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import drop_pg_database, unavailable
from tests.e2e.conftest import (
    ADMIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    pg_exam,
    run_cli,
    start_server,
    stop_all,
)
from tests.e2e.test_multiworker import (
    call_json,
    post_json,
    progress_of,
    staff_cookie,
    stream_events,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx-cact.conf"
NGINX = "/usr/sbin/nginx"
CERTUTIL = "/usr/bin/certutil"  # Debian's libnss3-tools
STATIC_FILE = "css/app.css"

MAIN_CONF = """\
{user}worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    include {dir}/site.conf;
}}
"""


def site_for_test(http_port: int, https_port: int, app_port: int, tls_dir: Path) -> str:
    """The shipped site with only ports, upstream and certificate paths replaced. Each
    replacement must happen exactly once, so a change in the file's shape breaks this test
    instead of silently testing something else."""
    text = SITE.read_text()
    for pattern, replacement in [
        (r"^(\s*)listen 80 default_server;", rf"\g<1>listen 127.0.0.1:{http_port} default_server;"),
        (r"^(\s*)listen 443 ssl default_server;",
         rf"\g<1>listen 127.0.0.1:{https_port} ssl default_server;"),
        (r"^(\s*)server 127\.0\.0\.1:8000;", rf"\g<1>server 127.0.0.1:{app_port};"),
        (r"^(\s*ssl_certificate\s+)/etc/cact/tls/server\.crt;", rf"\g<1>{tls_dir}/server.crt;"),
        (r"^(\s*ssl_certificate_key\s+)/etc/cact/tls/server\.key;",
         rf"\g<1>{tls_dir}/server.key;"),
        (r"^(\s*alias\s+)/etc/cact/tls/cact-ca\.crt;", rf"\g<1>{tls_dir}/cact-ca.crt;"),
    ]:
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        assert count == 1, f"deploy/nginx-cact.conf changed shape: {pattern!r} matched {count}x"
    assert "/etc/cact" not in re.sub(r"#.*", "", text), "a path the test did not replace"
    return text


def start_nginx(directory: Path) -> subprocess.Popen:
    """Our own nginx master (not the system service), its files all in ``directory``."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    # As root nginx's workers would switch to "nobody", who cannot enter pytest's private
    # tmp folders; here they stay root (as an unprivileged user the directive is not needed).
    user = "user root;\n" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(MAIN_CONF.format(user=user, dir=directory))
    conf = ["-p", str(directory), "-c", str(directory / "nginx.conf")]
    check = subprocess.run([NGINX, *conf, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    return subprocess.Popen([NGINX, *conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                            stderr=(directory / "stderr.log").open("w"))


def wait_for(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"nginx never answered {url}: {log.read_text()}")
        time.sleep(0.1)


def upload(base: str, cookie: str, csrf: str, size: int) -> tuple[int, str]:
    """POST a ``size``-byte file to the admin bank upload as a browser form would."""
    boundary = secrets.token_hex(16)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.zip\"\r\nContent-Type: application/zip\r\n\r\n").encode()
    body = head + os.urandom(size) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        base + "/admin/banks/upload", data=body, method="POST",
        headers={"Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def csrf_of(base: str, path: str, cookie: str) -> str:
    request = urllib.request.Request(base + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def https_request(port: int, context: ssl.SSLContext, method: str, path: str, *,
                  body: bytes | None = None, headers: dict | None = None,
                  ) -> http.client.HTTPResponse:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    return conn.getresponse()


def https_json(port: int, context: ssl.SSLContext, method: str, path: str, body: dict,
               token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = https_request(port, context, method, path, body=json.dumps(body).encode(),
                             headers=headers)
    assert response.status == 200, (response.status, response.read()[:300])
    return json.loads(response.read())


def trust_ca_in_nss(home: Path, ca: Path | None) -> None:
    """An NSS certificate store in ``home`` (where Chromium on Linux looks), empty or trusting
    ``ca`` for websites: `certutil -A -t "C,,"`, as cact tls init tells the lab to do."""
    nssdb = home / ".pki" / "nssdb"
    if not nssdb.exists():
        nssdb.mkdir(parents=True)
        subprocess.run([CERTUTIL, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if ca is not None:
        subprocess.run([CERTUTIL, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "CACT lab CA",
                        "-i", str(ca)], check=True, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)


def chromium_dump(url: str, home: Path) -> tuple[str, str]:
    """Debian's Chromium, headless, with ``home``'s certificate store, loads ``url``; returns
    the page's DOM (empty when the load failed) and Chromium's net::ERR_ lines. cact.lab and
    other.lab resolve to 127.0.0.1 for it."""
    done = subprocess.run(
        [CHROMIUM, "--headless", *CHROMIUM_ARGS,
         "--host-resolver-rules=MAP cact.lab 127.0.0.1, MAP other.lab 127.0.0.1",
         "--dump-dom", url],
        env={**os.environ, "HOME": str(home)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=90)
    return done.stdout.strip(), "\n".join(
        line for line in done.stderr.splitlines() if "net::ERR_" in line)


def answer_for(item: dict):
    option = item["options"][0]["id"]
    return [option] if item["kind"] == "multiple" else option


@pytest.mark.postgres
def test_the_shipped_nginx_site_in_front_of_two_workers(tmp_path):
    for program, package in ((NGINX, "nginx"), (CHROMIUM, "chromium"),
                             (CERTUTIL, "libnss3-tools")):
        if not os.path.exists(program):
            unavailable(f"{program} missing: apt-get install {package}")
    url, env, logins = pg_exam(tmp_path, "cact_nginx")
    procs: list[subprocess.Popen] = []
    try:
        seats = logins["normal"]
        tls_dir = tmp_path / "tls"
        printed = run_cli(env, "tls", "init", "--host", "cact.lab", "--ip", "127.0.0.1",
                          "--dir", str(tls_dir))
        assert "certutil -addstore -f Root cact-ca.crt" in printed

        app, app_base = start_server(env, tmp_path / "app.log", "--workers", "2")
        procs.append(app)
        deadline = time.monotonic() + 20  # both workers up, not just the one that answered
        while (tmp_path / "app.log").read_text().count("Started server process") < 2:
            assert time.monotonic() < deadline, (tmp_path / "app.log").read_text()
            time.sleep(0.2)
        http_port, https_port = free_port(), free_port()
        ngx = tmp_path / "nginx"
        ngx.mkdir()
        (ngx / "site.conf").write_text(site_for_test(
            http_port, https_port, urllib.parse.urlparse(app_base).port, tls_dir))
        procs.append(start_nginx(ngx))
        base = f"http://127.0.0.1:{http_port}"
        wait_for(base + "/healthz", procs[-1], ngx / "error.log")

        # -- plain HTTP through nginx: the proctor's stream, then a taker's login and save --
        cookie = staff_cookie(base)
        stream = stream_events(base, "/proctor/sessions/E2E/stream", cookie)
        event, html = next(stream)
        nip, token = seats[0]
        assert event == "grid" and progress_of(html, nip) == "—"
        login = post_json(base, "/api/v1/taker/login",
                          {"nip": nip, "token": token, "workstation": "PC-01"})
        form = call_json(base, "/api/v1/taker/attempt", login["access_token"])
        item = form["items"][0]
        saved = call_json(base, f"/api/v1/taker/answers/{item['item_id']}",
                          login["access_token"], method="PUT",
                          body={"response": answer_for(item), "seq": 1})
        assert saved["accepted"] is True
        acknowledged = time.monotonic()
        for _event, html in stream:
            if progress_of(html, nip) == "1/5":
                break
            assert time.monotonic() - acknowledged < 5, "the stream never showed the save"
        # nginx passes each event on at once: the app checks every second.
        assert time.monotonic() - acknowledged < 2.0
        stream.close()
        # Browsers ask for gzip; a compressed stream would sit in gzip's buffer, so the
        # stream must come back plain, its first event at once.
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        asked = time.monotonic()
        conn.request("GET", "/proctor/sessions/E2E/stream",
                     headers={"Cookie": cookie, "Accept": "text/event-stream",
                              "Accept-Encoding": "gzip, deflate, br"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Encoding") is None
        assert response.readline() == b"retry: 2000\n"
        assert response.readline() == b"\n"
        assert response.readline().startswith(b"event: grid")
        assert time.monotonic() - asked < 2.0
        conn.close()

        # -- the app sees the PC's own address, whatever X-Forwarded-For the PC sends: from
        #    127.0.0.2 a forged "127.0.0.1" must not open /metrics (open to 127.0.0.1 only) --
        def metrics_from(source: str) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10,
                                              source_address=(source, 0))
            conn.request("GET", "/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status, body

        status, body = metrics_from("127.0.0.1")
        assert status == 200 and b"# HELP" in body
        status, body = metrics_from("127.0.0.2")
        assert status != 200 and b"# HELP" not in body, status

        # -- the lab PCs can fetch the CA certificate (and nothing else of the TLS folder) --
        with urllib.request.urlopen(base + "/ca.crt", timeout=10) as response:
            assert response.headers["Content-Type"] == "application/x-x509-ca-cert"
            assert response.headers["Server"] == "nginx"  # no version given away
            assert response.read() == (tls_dir / "cact-ca.crt").read_bytes()
        for secret in ("/cact-ca.key", "/server.key", "/ca.crt/../cact-ca.key"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + secret, timeout=10)
            assert refused.value.code == 404

        # -- static files come from the app through nginx, cached by browsers for an hour --
        request = urllib.request.Request(base + "/static/" + STATIC_FILE,
                                         headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert "max-age=3600" in response.headers["Cache-Control"]
            assert response.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(response.read())
        assert body == (ROOT / "frontend" / "static" / STATIC_FILE).read_bytes()

        # -- a 40 MB bank reaches the app (not a zip, so the app refuses it with its own
        #    page); above the app's 50 MB limit the admin still gets the app's message --
        csrf = csrf_of(base, "/admin/banks", cookie)
        started = time.monotonic()
        status, page = upload(base, cookie, csrf, 40 * 1024 * 1024)
        assert status == 422, (status, page[:300])
        assert "big.zip" in page and "<html" in page.lower()
        assert time.monotonic() - started < 60
        status, page = upload(base, cookie, csrf, 52 * 1024 * 1024)
        assert status == 422 and "50 MB" in page, (status, page[:300])

        # -- HTTPS with the certificate from `cact tls init` --
        lab_ca = ssl.create_default_context(cafile=str(tls_dir / "cact-ca.crt"))
        response = https_request(https_port, lab_ca, "GET", "/healthz")
        assert response.status == 200
        peer = response.fp.raw._sock.getpeercert()  # noqa: SLF001 - the verified chain's leaf
        response.read()
        assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]
        # Without the lab CA the certificate is not trusted: the trust really comes from it.
        with pytest.raises(ssl.SSLCertVerificationError):
            https_request(https_port, ssl.create_default_context(), "GET", "/healthz")
        # By name with SNI (cact.lab resolves nowhere here, so connect to the address).
        with socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw, \
                lab_ca.wrap_socket(raw, server_hostname="cact.lab") as tls_sock:
            tls_sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: cact.lab\r\n"
                             b"Connection: close\r\n\r\n")
            reply = b""
            while chunk := tls_sock.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200")
            assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")
        with socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            lab_ca.wrap_socket(raw, server_hostname="other.lab")

        # A real Chromium that trusts the lab CA (in its NSS store, as on a Linux lab PC)
        # opens the login page over HTTPS by address and by name; without the CA, or under a
        # name the certificate does not carry, it refuses.
        home = tmp_path / "pc-home"
        trust_ca_in_nss(home, None)
        page, error = chromium_dump(f"https://127.0.0.1:{https_port}/login", home)
        assert page == "" and "ERR_CERT_AUTHORITY_INVALID" in error
        trust_ca_in_nss(home, tls_dir / "cact-ca.crt")
        for host in ("127.0.0.1", "cact.lab"):
            page, error = chromium_dump(f"https://{host}:{https_port}/login", home)
            assert 'name="csrf_token"' in page, (host, error)
        page, error = chromium_dump(f"https://other.lab:{https_port}/login", home)
        assert page == "" and "ERR_CERT_COMMON_NAME_INVALID" in error

        # A taker's login and save over HTTPS.
        nip, token = seats[1]
        login = https_json(https_port, lab_ca, "POST", "/api/v1/taker/login",
                           {"nip": nip, "token": token, "workstation": "PC-02"})
        response = https_request(https_port, lab_ca, "GET", "/api/v1/taker/attempt",
                                 headers={"Authorization": f"Bearer {login['access_token']}"})
        assert response.status == 200
        form = json.loads(response.read())
        item = form["items"][0]
        saved = https_json(https_port, lab_ca, "PUT", f"/api/v1/taker/answers/{item['item_id']}",
                           {"response": answer_for(item), "seq": 1}, login["access_token"])
        assert saved["accepted"] is True
        # X-Forwarded-Proto reaches the app: the staff cookie set over HTTPS is Secure
        # (CACT_COOKIE_SECURE=auto), the one set over plain HTTP was not.
        response = https_request(https_port, lab_ca, "GET", "/login")
        page = response.read().decode()
        anon = [v.split(";")[0] for k, v in response.getheaders() if k.lower() == "set-cookie"]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = https_request(
            https_port, lab_ca, "POST", "/login",
            body=urllib.parse.urlencode({"username": ADMIN[0], "password": ADMIN[1],
                                         "csrf_token": csrf}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Cookie": "; ".join(anon)})
        response.read()
        session = [v for k, v in response.getheaders()
                   if k.lower() == "set-cookie" and v.startswith("cact_session=")]
        assert session and "secure" in session[0].lower(), response.getheaders()

        # Every request above went through our nginx.
        assert "/api/v1/taker/answers/" in (ngx / "access.log").read_text()

        # Switching on the site's commented redirect sends plain HTTP to HTTPS.
        site = (ngx / "site.conf").read_text()
        site, count = re.subn(r"^(\s*)# (if \(\$scheme = http\) \{ return 301 .*\})$", r"\1\2",
                              site, flags=re.M)
        assert count == 1, "the commented HTTPS redirect is gone from deploy/nginx-cact.conf"
        (ngx / "site.conf").write_text(site)
        conf = ["-p", str(ngx), "-c", str(ngx / "nginx.conf")]
        assert subprocess.run([NGINX, *conf, "-t"], capture_output=True).returncode == 0
        assert subprocess.run([NGINX, *conf, "-s", "reload"], capture_output=True).returncode == 0
        deadline = time.monotonic() + 10
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            conn.request("GET", "/login?next=/admin")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 301 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert response.status == 301
        assert response.getheader("Location") == "https://127.0.0.1/login?next=/admin"
    finally:
        stop_all(procs)
        drop_pg_database(url)


def test_the_shipped_site_limits_request_bodies_per_location(tmp_path):
    """nginx refuses what the app would refuse (app/http_limits.py) before reading it: 64 KB
    for takers and anonymous pages, 1 MB for staff forms, 60 MB for the bank upload. The upload
    location streams to the app, which refuses a sender who is not a logged-in admin from the
    headers, so nginx spools nothing for them either."""
    if not os.path.exists(NGINX):
        unavailable(f"{NGINX} missing: apt-get install nginx")
    from app.ops import tls
    from tests.integration.test_http_limits import multipart_head, request_head, stream_body

    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": ""}
    procs: list[subprocess.Popen] = []
    try:
        run_cli(env, "db", "upgrade")
        run_cli(env, "user", "create", ADMIN[0], "--role", "admin", "--password-stdin",
                stdin=ADMIN[1] + "\n")
        tls_dir = tmp_path / "tls"
        tls.init(tls_dir, hosts=["cact.lab"], ips=["127.0.0.1"])
        app, app_base = start_server(env, tmp_path / "app.log")
        procs.append(app)
        http_port, https_port = free_port(), free_port()
        ngx = tmp_path / "nginx"
        ngx.mkdir()
        (ngx / "site.conf").write_text(site_for_test(
            http_port, https_port, urllib.parse.urlparse(app_base).port, tls_dir))
        procs.append(start_nginx(ngx))
        base = f"http://127.0.0.1:{http_port}"
        wait_for(base + "/healthz", procs[-1], ngx / "error.log")
        mib = 1024 * 1024

        def refused_by_nginx(answer) -> bool:
            return answer.status == 413 and b"nginx" in answer.body

        # Takers and anonymous pages: 64 KB. A 50 MB save and a 500 MB login are refused from
        # their headers.
        answer = stream_body(http_port, request_head(
            "PUT", "/api/v1/taker/answers/1", length=50 * mib,
            content_type="application/json"), 50 * mib)
        assert refused_by_nginx(answer) and answer.sent_before_answer < 16 * mib
        head, first, _ = multipart_head("/login", 500 * mib)
        answer = stream_body(http_port, head + first.decode(), 500 * mib)
        assert refused_by_nginx(answer) and answer.sent_before_answer < 16 * mib
        for path in ("/", "/ujian/masuk", "/lang"):
            answer = stream_body(http_port, request_head(
                "POST", path, length=100 * 1024,
                content_type="application/x-www-form-urlencoded"), 100 * 1024)
            assert refused_by_nginx(answer), path
        # A small login still reaches the app (and is refused there for its CSRF token).
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        conn.request("POST", "/login", body=b"username=a&password=b",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        assert response.status == 403 and b"nginx" not in response.read()
        conn.close()

        # Staff forms: 1 MB; more is refused by nginx, a 500 KB form reaches the app.
        cookie = staff_cookie(base)
        answer = stream_body(http_port, request_head(
            "POST", "/admin/blueprints/editor", length=2 * mib,
            content_type="application/x-www-form-urlencoded", extra={"Cookie": cookie}),
            2 * mib)
        assert refused_by_nginx(answer)
        answer = stream_body(http_port, request_head(
            "POST", "/admin/blueprints/editor", length=500 * 1024,
            content_type="application/x-www-form-urlencoded", extra={"Cookie": cookie}),
            500 * 1024)
        assert answer.status == 403 and b"nginx" not in answer.body  # the app's CSRF refusal

        # The bank upload: without a session cookie nginx refuses it at once; a forged cookie
        # gets through nginx, the app refuses it from the headers and cuts the connection
        # (nginx shows 502), and nginx kept no copy of the body either way.
        head, first, _ = multipart_head("/admin/banks/upload", 40 * mib)
        answer = stream_body(http_port, head + first.decode(), 40 * mib)
        assert refused_by_nginx(answer) and answer.sent_before_answer < 16 * mib
        head, first, _ = multipart_head("/admin/banks/upload", 40 * mib,
                                        Cookie="cact_session=forged")
        answer = stream_body(http_port, head + first.decode(), 40 * mib)
        assert answer.status in (413, 502) and answer.sent_before_answer < 16 * mib, answer
        assert "/admin/banks/upload HTTP/1.1\" 413" in (tmp_path / "app.log").read_text()
        spooled = [line for line in (ngx / "error.log").read_text().splitlines()
                   if "buffered to a temporary file" in line and "/admin/banks/upload" in line]
        assert not spooled, spooled
        # The admin's 40 MB file reaches the app (not a zip: the app's own page says so);
        # above 60 MB nginx refuses it.
        csrf = csrf_of(base, "/admin/banks", cookie)
        status, page = upload(base, cookie, csrf, 40 * mib)
        assert status == 422 and "big.zip" in page, (status, page[:300])
        head, first, _ = multipart_head("/admin/banks/upload", 70 * mib, Cookie=cookie)
        answer = stream_body(http_port, head + first.decode(), 70 * mib)
        assert refused_by_nginx(answer)
        # A roster upload location allows 4 MB, the app's own 2 MB message shows below that.
        csrf = csrf_of(base, "/admin/banks", cookie)
        boundary = secrets.token_hex(8)
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
                f"{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"r.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() \
            + b"x" * (3 * mib) + f"\r\n--{boundary}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
        conn.request("POST", "/admin/sessions/NOPE/roster", body=body, headers={
            "Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = conn.getresponse()
        assert response.status == 404 and b"nginx" not in response.read()  # the app answered
        conn.close()
    finally:
        stop_all(procs)


def debian_tree(tmp_path: Path, tls_dir: Path, *, with_default_site: bool) -> Path:
    """A copy of this machine's /etc/nginx (Debian's own nginx.conf, modules, mime types) whose
    sites-enabled holds the shipped site as the installer puts it: unchanged but for the
    certificate paths (`nginx -t` reads the certificates but binds no port)."""
    etc = tmp_path / ("with-default" if with_default_site else "etc-nginx")
    shutil.copytree("/etc/nginx", etc, symlinks=False)
    enabled = etc / "sites-enabled"
    shutil.rmtree(enabled)
    enabled.mkdir()
    site = SITE.read_text().replace("/etc/cact/tls/", f"{tls_dir}/")
    (enabled / "cact").write_text(site)
    if with_default_site:
        shutil.copy(etc / "sites-available" / "default", enabled / "default")
    main = (etc / "nginx.conf").read_text()
    for debian, ours in (("/etc/nginx/", f"{etc}/"), ("/var/log/nginx/", f"{etc}/"),
                         ("/run/nginx.pid", f"{etc}/nginx.pid")):
        assert debian in main, f"Debian's nginx.conf no longer mentions {debian}"
        main = main.replace(debian, ours)
    (etc / "nginx.conf").write_text(main)
    return etc


def test_the_site_fits_debians_nginx_conf_once_the_default_site_is_gone(tmp_path):
    if not os.path.exists(NGINX) or not os.path.exists("/etc/nginx/nginx.conf"):
        unavailable(f"{NGINX} or /etc/nginx/nginx.conf missing: apt-get install nginx")
    from app.ops import tls

    tls_dir = tmp_path / "tls"
    tls.init(tls_dir, hosts=["cact.lab"], ips=["127.0.0.1"])

    etc = debian_tree(tmp_path, tls_dir, with_default_site=False)
    check = subprocess.run([NGINX, "-t", "-p", str(etc), "-c", str(etc / "nginx.conf")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr

    # Debian's default site also claims port 80 as default server: the installer removes it.
    etc = debian_tree(tmp_path, tls_dir, with_default_site=True)
    check = subprocess.run([NGINX, "-t", "-p", str(etc), "-c", str(etc / "nginx.conf")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode != 0 and "duplicate default server" in check.stderr, check.stderr
