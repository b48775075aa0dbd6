"""Past one machine: K `cact serve` processes behind the real nginx, sharing one PostgreSQL.

    .venv/bin/python bench/scaleout.py --servers 1,2,3 --takers 2000
    .venv/bin/python bench/scaleout.py --servers 2 --takers 5000 --think 20 --paced-seconds 60 \\
        --db postgresql+psycopg://postgres@127.0.0.1/cactbench_scale

For each K of --servers (one run each, a fresh database each time):

1. Drops and creates the PostgreSQL database (--db; default ``cactbench_scale`` on the local
   server) and builds bench/autosave.py's exam in it: the sample banks, the half-day blueprint
   (112 items per form) and an open session of --takers participants.
2. Starts K `cact serve --workers 1` on K ports, each with a data directory of its own (as K
   machines would have; the secret key is shared), and one nginx master of our own
   (`nginx -p DIR -c DIR/nginx.conf`, as tests/e2e/test_nginx.py runs it) serving
   deploy/nginx-cact.conf as shipped but for the listen ports, the certificate paths and the
   upstream, which lists the K ports (nginx spreads requests over them round robin).
3. Drives bench/autosave.py's load through nginx, with its own functions: the synchronized
   start (every taker logs in and fetches the form at once, --concurrency connections), the
   exam as sat (each taker changes an answer every --think seconds on average, for
   --paced-seconds), everyone handing in, and the durability check (every acknowledged save is
   in the database: lost and regressed must be 0).
4. Prints one row per K: start seconds (first login to last form), login+form p99, paced
   autosave p50/p99 and saves/s, hand-in seconds, errors, lost/regressed, CPU seconds and peak
   memory of each server (and of nginx).

Every server and nginx is stopped on exit, on an error and on Ctrl-C; the database is dropped.
The load generator runs on the same cores as the servers, nginx and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import autosave  # noqa: E402 - the bench next to this one: exam, load phases, durability check

SITE = HERE.parent / "deploy" / "nginx-cact.conf"
NGINX = "/usr/sbin/nginx"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1/cactbench_scale"
POOL_PER_SERVER = 20  # app/db.py: pool_size 10 + max_overflow 10 per worker process

MAIN_CONF = """\
{user}worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
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


def site_conf(http_port: int, https_port: int, app_ports: list[int], tls_dir: Path) -> str:
    """The shipped site with only the listen ports, the certificate paths and the upstream
    replaced (the upstream by one ``server`` line per app port). Each replacement must happen
    exactly once: a change in the file's shape stops the bench instead of measuring
    something else."""
    servers = "\n".join(rf"\g<1>server 127.0.0.1:{port};" for port in app_ports)
    text = SITE.read_text()
    for pattern, replacement in [
        (r"^(\s*)listen 80 default_server;", rf"\g<1>listen 127.0.0.1:{http_port} default_server;"),
        (r"^(\s*)listen 443 ssl default_server;",
         rf"\g<1>listen 127.0.0.1:{https_port} ssl default_server;"),
        (r"^(\s*)server 127\.0\.0\.1:8000;[^\n]*", servers),
        (r"^(\s*ssl_certificate\s+)/etc/cact/tls/server\.crt;", rf"\g<1>{tls_dir}/server.crt;"),
        (r"^(\s*ssl_certificate_key\s+)/etc/cact/tls/server\.key;",
         rf"\g<1>{tls_dir}/server.key;"),
        (r"^(\s*alias\s+)/etc/cact/tls/cact-ca\.crt;", rf"\g<1>{tls_dir}/cact-ca.crt;"),
    ]:
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        if count != 1:
            raise SystemExit(f"deploy/nginx-cact.conf changed shape: {pattern!r} matched "
                             f"{count}x; update bench/scaleout.py")
    if "/etc/cact" in re.sub(r"#.*", "", text):
        raise SystemExit("deploy/nginx-cact.conf names a path bench/scaleout.py does not replace")
    return text


def start_nginx(directory: Path, app_ports: list[int]) -> tuple[subprocess.Popen, str]:
    """Our own nginx master (not the system service), its files all in ``directory``, in front
    of ``app_ports``; returns it and its plain-HTTP base URL once it answers."""
    from app.ops import tls

    tls_dir = directory / "tls"
    tls.init(tls_dir, hosts=["cact.lab"], ips=["127.0.0.1"])
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    http_port, https_port = autosave.free_port(), autosave.free_port()
    (directory / "site.conf").write_text(site_conf(http_port, https_port, app_ports, tls_dir))
    # As root nginx's workers would switch to "nobody", who cannot enter a private temporary
    # folder; here they stay root (as an unprivileged user the directive is not needed).
    user = "user root;\n" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(MAIN_CONF.format(user=user, dir=directory))
    conf = ["-p", str(directory), "-c", str(directory / "nginx.conf")]
    check = subprocess.run([NGINX, *conf, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t: {check.stderr}")
    proc = subprocess.Popen([NGINX, *conf, "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                            stderr=(directory / "stderr.log").open("w"))
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return proc, base
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop([proc])
            log = directory / "error.log"
            raise RuntimeError(f"nginx never answered: {log.read_text() if log.exists() else ''}")
        time.sleep(0.2)


def stop(procs: list[subprocess.Popen]) -> None:
    """Stop what this bench started, last started first; kill what does not stop."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in reversed(procs):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    procs.clear()


def quantile(samples: list[float], q: float) -> float:
    """Milliseconds at quantile ``q``, the way autosave.percentiles reads it."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def one_run(k: int, args: argparse.Namespace, root: Path, procs: list[subprocess.Popen]
            ) -> dict:
    """K servers behind nginx, the load, the durability check: one row of the table."""
    autosave.fresh_postgresql(args.db)
    run_dir = root / f"k{k}"
    env = {"CACT_DATA_DIR": str(run_dir / "setup"), "CACT_SECRET_KEY": "b" * 48,
           "CACT_DATABASE_URL": args.db}
    t0 = time.perf_counter()
    logins = autosave.setup(env, args.takers)
    print(f"K={k}: setup of {args.takers} participants in {time.perf_counter() - t0:.1f} s",
          flush=True)

    servers: list[subprocess.Popen] = []
    ports = []
    for n in range(k):
        port = autosave.free_port()
        server_env = {**env, "CACT_DATA_DIR": str(run_dir / f"server-{n + 1}")}
        server = autosave.start_server([sys.executable, "-m", "app.cli", "serve", "--port",
                                        str(port), "--workers", "1"], server_env, port)
        procs.append(server)
        servers.append(server)
        ports.append(port)
    nginx, base = start_nginx(run_dir / "nginx", ports)
    procs.append(nginx)
    print(f"K={k}: {k} server(s) on ports {', '.join(map(str, ports))} behind nginx at {base}",
          flush=True)

    takers, start_s, latencies, start_errors = asyncio.run(
        autosave.start_phase(base, logins, args.concurrency, 0))
    print(f"  start: {len(takers)} logged in and got their form in {start_s:.1f} s; "
          f"login+form {autosave.percentiles(latencies['login+form'])}; "
          f"errors {dict(start_errors)}", flush=True)
    paced = autosave.SaveLog()
    paced_s = asyncio.run(autosave.paced_phase(base, takers, args.paced_seconds, args.think,
                                               args.concurrency, paced))
    print(f"  paced (each taker every {args.think:g} s on average, {args.paced_seconds:g} s): "
          f"{len(paced.latencies)} saves = {len(paced.latencies) / paced_s:.0f}/s, "
          f"{autosave.percentiles(paced.latencies)}; errors {dict(paced.errors)}", flush=True)
    submit_s, submit_latencies, submit_errors = asyncio.run(
        autosave.submit_phase(base, takers, args.concurrency))
    print(f"  hand-in: {len(submit_latencies)} in {submit_s:.1f} s, "
          f"{autosave.percentiles(submit_latencies)}; errors {dict(submit_errors)}", flush=True)
    usage = [autosave.server_usage(s.pid) for s in servers]
    nginx_cpu, nginx_peak = autosave.server_usage(nginx.pid)
    stop(procs)
    lost, regressed = autosave.verify(env, paced.acked)
    print(f"  durability: {len(paced.acked)} acknowledged answers checked, lost {lost}, "
          f"regressed {regressed}", flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "k": k, "takers": len(logins), "started": len(takers), "start_s": start_s,
        "login_form_p99": quantile(latencies["login+form"], 0.99),
        "paced_p50": quantile(paced.latencies, 0.50), "paced_p99": quantile(paced.latencies, 0.99),
        "saves_s": len(paced.latencies) / paced_s, "submit_s": submit_s,
        "errors": (sum(start_errors.values()) + sum(paced.errors.values())
                   + sum(submit_errors.values())),
        "lost": lost, "regressed": regressed,
        "cpu": [c for c, _ in usage], "rss": [p / 1024 for _, p in usage],
        "nginx_cpu": nginx_cpu, "nginx_rss": nginx_peak / 1024}


def print_table(rows: list[dict]) -> None:
    print()
    print(f"{'K':>2} {'takers':>6} {'start s':>8} {'login+form p99':>15} {'paced p50/p99 ms':>17} "
          f"{'saves/s':>8} {'hand-in s':>10} {'errors':>6} {'lost/regr':>9}  "
          "server CPU s | peak MiB (each), nginx")
    for r in rows:
        cpu = "/".join(f"{c:.0f}" for c in r["cpu"])
        rss = "/".join(f"{m:.0f}" for m in r["rss"])
        print(f"{r['k']:>2} {r['takers']:>6} {r['start_s']:>8.1f} "
              f"{r['login_form_p99']:>12.0f} ms {r['paced_p50']:>7.0f}/{r['paced_p99']:<9.0f} "
              f"{r['saves_s']:>8.0f} {r['submit_s']:>10.1f} {r['errors']:>6} "
              f"{r['lost']:>4}/{r['regressed']:<4}  {cpu} s | {rss} MiB, "
              f"nginx {r['nginx_cpu']:.1f} s | {r['nginx_rss']:.0f} MiB", flush=True)


def servers_list(text: str) -> list[int]:
    try:
        found = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a number or a list like 1,2,3") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError("at least one server")
    return found


def max_connections(url: str) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(url).set(database="postgres"))
    with engine.connect() as conn:
        found = int(conn.execute(text("SHOW max_connections")).scalar_one())
    engine.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=servers_list, default=[1],
                        help="K app servers, or a list (1,2,3: one run and one row each)")
    parser.add_argument("--takers", type=int, default=2000)
    parser.add_argument("--think", type=float, default=20.0,
                        help="paced phase: mean seconds between a taker's answer changes")
    parser.add_argument("--paced-seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=200,
                        help="connections of the load generator to nginx")
    parser.add_argument("--db", default=DEFAULT_DB,
                        help="PostgreSQL URL; the database is dropped and created for each run "
                             "and dropped at the end")
    args = parser.parse_args()
    if not os.path.exists(NGINX):
        raise SystemExit(f"{NGINX} missing: apt-get install nginx")
    if not args.db.startswith("postgresql"):
        raise SystemExit("--db must be a PostgreSQL URL: several servers share one database")
    limit = max_connections(args.db)
    if max(args.servers) * POOL_PER_SERVER > limit - 10:
        print(f"warning: {max(args.servers)} servers may open {POOL_PER_SERVER} connections "
              f"each; PostgreSQL allows {limit} (max_connections)", file=sys.stderr)

    # Ctrl-C (even when started in the background, where SIGINT comes ignored) and a plain
    # `kill` both end in the clean-up below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="cact-scaleout-"))
    procs: list[subprocess.Popen] = []
    rows: list[dict] = []
    print(f"{args.takers} takers, think {args.think:g} s, paced {args.paced_seconds:g} s, "
          f"{args.concurrency} connections; {os.cpu_count()} cores shared by the load "
          f"generator, nginx, the servers and PostgreSQL", flush=True)
    try:
        for k in args.servers:
            rows.append(one_run(k, args, root, procs))
    finally:
        stop(procs)
        autosave.fresh_postgresql(args.db, create=False)
        shutil.rmtree(root, ignore_errors=True)
        if rows:
            print_table(rows)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: servers and nginx stopped, database dropped")
