"""Loopback servers for the benchmarks: Debian's nginx and blackbox_exporter, run as our own
processes (never the system services), and bench/target.py.

Each is a context manager that starts the process, waits until it answers, and stops it on the
way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nginx", "prometheus-blackbox-exporter")
# bench/target.py's `/` answers this body too, so both targets cost the probe the same bytes.
BODY = "ok " * 100
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class SetupError(Exception):
    """A benchmark's setup failed; the message says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str | None:
    # /usr/sbin is not on every user's PATH, and nginx lives there.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def ensure_installed(packages: tuple[str, ...] = PACKAGES) -> None:
    """apt-get install the packages whose binaries are missing (Debian/Ubuntu)."""
    missing = [name for name in packages if binary(name) is None]
    if not missing:
        return
    apt = binary("apt-get")
    if apt is None:
        raise SetupError(f"{' and '.join(missing)} missing and no apt-get here: install them")
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", *missing]
    print(f"setup: {' '.join(install)}", flush=True)
    done = subprocess.run(install, env=env, check=False)
    if done.returncode != 0:
        # Stale or absent package lists are the usual cause on a fresh machine.
        update = [*prefix, apt, "update"]
        print(f"setup: install failed; {' '.join(update)} and retrying", flush=True)
        subprocess.run(update, env=env, check=False)
        done = subprocess.run(install, env=env, check=False)
    still = [name for name in missing if binary(name) is None]
    if done.returncode != 0 or still:
        raise SetupError(
            f"could not install {' '.join(missing)} (apt-get exit {done.returncode}); "
            f"run `apt-get install -y {' '.join(missing)}` as root and try again"
        )


def wait_listening(port: int, *, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"{name} exited at startup with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SetupError(f"{name} did not listen on 127.0.0.1:{port} within 15 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Server:
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    {http}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        {server}
    }}
}}
"""


@contextmanager
def nginx() -> Iterator[Server]:
    """Our own nginx on a free loopback port; `/` answers 200 with a 300-byte body."""
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as folder:
        server = f'location = / {{ return 200 "{BODY}"; }}'
        with nginx_in(folder, http="default_type text/plain;", server=server) as running:
            yield running


@contextmanager
def nginx_in(folder: str, *, http: str, server: str) -> Iterator[Server]:
    """Our own nginx on a free loopback port with NGINX_CONF, `http` and `server` filled in,
    its prefix (config, pid, logs, temp files) in `folder`."""
    exe = binary("nginx")
    if exe is None:
        raise SetupError("nginx is not installed (apt-get install -y nginx)")
    port = free_port()
    conf = Path(folder, "nginx.conf")
    conf.write_text(NGINX_CONF.format(dir=folder, port=port, http=http, server=server))
    # -e: the error log before the config is read would otherwise go to /var/log/nginx.
    process = subprocess.Popen(
        [exe, "-p", folder, "-c", str(conf), "-e", f"{folder}/error.log"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
    )
    try:
        wait_listening(port, process=process, name="nginx")
        yield Server(pid=process.pid, port=port)
    finally:
        stop(process)


BLACKBOX_CONF = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: []  # empty means any 2xx
      preferred_ip_protocol: ip4
"""


@contextmanager
def blackbox_exporter() -> Iterator[Server]:
    """Our own prometheus-blackbox-exporter with an `http_2xx` module, on a free port."""
    exe = binary("prometheus-blackbox-exporter") or binary("blackbox_exporter")
    if exe is None:
        raise SetupError(
            "blackbox_exporter is not installed (apt-get install -y prometheus-blackbox-exporter)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-blackbox-") as folder:
        conf = Path(folder, "blackbox.yml")
        conf.write_text(BLACKBOX_CONF)
        process = subprocess.Popen(
            [
                exe,
                f"--config.file={conf}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_listening(port, process=process, name="blackbox_exporter")
            yield Server(pid=process.pid, port=port)
        finally:
            stop(process)


@contextmanager
def target() -> Iterator[Server]:
    """bench/target.py: `/` at once, `/delay/<ms>` after exactly that long."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.target", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise SetupError(f"bench/target.py did not start (exit {process.poll()})")
        yield Server(pid=process.pid, port=port)
    finally:
        stop(process)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int, *, field: str = "VmRSS") -> float:
    """A memory figure of /proc/<pid>/status in MB: VmRSS now, VmHWM at its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")
