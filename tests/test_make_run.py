"""What `make run` starts, used as a client would: the real services under `services/`,
on the embedded stack, answering through their public API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from parley.stack.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.own_infrastructure]


def test_parley_dev_serves_the_real_services(tmp_path: Path) -> None:
    auth_port, gateway_port = free_port(), free_port()
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "parley",
                "dev",
                "--data-dir",
                str(tmp_path / "data"),
                "--pg-port",
                str(free_port()),
                "--redis-port",
                str(free_port()),
                "--kafka-port",
                str(free_port()),
                "--service-port",
                f"auth={auth_port}",
                "--service-port",
                f"gateway={gateway_port}",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 120
        while "parley | ready in" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        base = f"http://127.0.0.1:{auth_port}/api/v1"
        registered = httpx.post(
            f"{base}/auth/register",
            json={"email": "Ada@Example.com ", "password": "correct horse battery", "name": "Ada"},
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["data"]["tokens"]["access_token"]
        me = httpx.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["data"]["email"] == "Ada@Example.com"  # trimmed, casing kept
        again = httpx.post(
            f"{base}/auth/register",
            json={"email": "ada@example.com", "password": "another password", "name": "Ada"},
        )
        assert again.status_code == 409
        assert again.json()["error"] == "EMAIL_EXISTS"

        # and the same through the one public door
        gateway = f"http://127.0.0.1:{gateway_port}"
        door = httpx.post(
            f"{gateway}/api/v1/auth/login",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
        assert door.status_code == 200, door.text
        assert "x-ratelimit-remaining" in door.headers
        token = door.json()["data"]["tokens"]["access_token"]
        me = httpx.get(f"{gateway}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["data"]["email"] == "Ada@Example.com"
        assert httpx.get(f"{gateway}/api/v1/auth/me").status_code == 401
        assert httpx.post(f"{gateway}/internal/admins", json={}).status_code == 404
        ready = httpx.get(f"{gateway}/health/ready").json()
        assert ready["components"]["auth"]["status"] == "up"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
