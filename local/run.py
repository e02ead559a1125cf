"""`make run`: moto server, bootstrap, demo seed, `chalice local`, and the event pump — Ctrl-C stops it all."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from .environment import API_HOST, API_PORT, MOTO_HOST, MOTO_PORT, apply, local_environment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Handlers fed by the stream and by SNS topics that invoke Lambda directly in production.
LOCAL_HANDLERS = ("table_stream", "inbound_email")
logger = logging.getLogger("kefu.local")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise SystemExit(f"nothing listened on {host}:{port} within {seconds:.0f}s")


def start_moto(env: dict[str, str]) -> subprocess.Popen[bytes]:
    from . import moto_speedups

    if not moto_speedups.supported():
        logger.warning("moto is not %s: local/moto_speedups.py is not applied", moto_speedups.MOTO_VERSION)
    moto_env = dict(env, MOTO_PORT=str(MOTO_PORT), TZ="UTC")
    proc = subprocess.Popen(
        # moto.server's own command line, with moto_speedups.install() applied first
        [str(BIN / "python"), "-m", "local.moto_speedups", "-H", MOTO_HOST, "-p", str(MOTO_PORT)],
        cwd=ROOT,
        env=moto_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(MOTO_HOST, MOTO_PORT, 60, proc)
    enable_step_functions_execution()
    return proc


def enable_step_functions_execution() -> None:
    request = urllib.request.Request(
        f"http://{MOTO_HOST}:{MOTO_PORT}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        response.read()


def start_api(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.api_server",  # `chalice local`, unknown routes answered as the deployed gateway does
            "--no-autoreload",
            "--host",
            API_HOST,
            "--port",
            str(API_PORT),
            "--stage",
            "local",
        ],
        cwd=ROOT,
        env=env,
    )
    wait_for_port(API_HOST, API_PORT, 60, proc)
    return proc


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if port_open(API_HOST, API_PORT) or port_open(MOTO_HOST, MOTO_PORT):
        raise SystemExit(f"ports {API_PORT}/{MOTO_PORT} are in use: is another `make run` still running?")
    env = local_environment()
    apply(env)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        children.append(start_moto(env))
        # Imported only now: the app and its clients see the local environment.
        import app as kefu_app
        from chalicelib import resources
        from chalicelib.adapters.aws import AwsClients
        from chalicelib.config import Settings
        from chalicelib.wiring import Container, set_container

        from .bootstrap import bootstrap
        from .demo import DEMO_STAFF, staff_token
        from .pump import EventPump
        from .seed import seed

        settings = Settings.from_env()
        aws = AwsClients(settings.region, settings.endpoint_url, settings.account_id)
        stack = bootstrap(aws, settings.table_name)
        container = Container(settings)
        set_container(container)
        ticket_ids = seed(container)
        children.append(start_api(env))
        handlers = {
            name: getattr(kefu_app, name)
            for name in (*{q.handler for q in resources.QUEUES}, *LOCAL_HANDLERS, *resources.SCHEDULES)
            if hasattr(kefu_app, name)
        }
        pump = EventPump(aws, stack, handlers)
        base = settings.public_base_url
        print("\n" + "=" * 72)
        print(
            f"kefu is running.\n  API        {base}\n  admin page {base}/admin/\n  moto       {env['AWS_ENDPOINT_URL']}"
        )
        print(f"  demo tickets: {', '.join(ticket_ids)}")
        print("  staff tokens (paste one into the admin page):")
        for member in DEMO_STAFF:
            print(f"    {member.id:<12} {','.join(member.roles):<14} {staff_token(settings.local_jwt_secret, member)}")
        print("Ctrl-C stops everything.\n" + "=" * 72, flush=True)
        parent = os.getppid()
        while not stopping:
            if os.getppid() != parent:
                logger.error("the process that started the stack is gone; stopping")  # no orphaned stacks
                break
            if any(child.poll() is not None for child in children):
                logger.error("a child process exited; stopping")
                break
            if pump.step() == 0:
                time.sleep(0.2)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        print("kefu stopped.", flush=True)


if __name__ == "__main__":
    main()
