"""`parley dev` as an operator runs it: starts, answers ready, keeps data across restarts,
refuses a taken port clearly, and leaves no process behind after SIGINT."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from parley.stack.ports import free_port

SAMPLE = Path(__file__).parent / "sample_service"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.own_infrastructure]


@dataclass
class DevProcess:
    proc: subprocess.Popen[str]
    log: Path
    ports: dict[str, int]

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not seen; output:\n{self.output()}")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    @staticmethod
    def command_lines(processes: list[psutil.Process]) -> str:
        """The command lines of those still running: a postgres backend or a helper may
        exit between listing and reading, which is not what these tests look at."""
        lines = []
        for process in processes:
            try:
                lines.append(" ".join(process.cmdline()))
            except psutil.NoSuchProcess:
                continue
        return " ".join(lines)

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def services_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "services"
    shutil.copytree(SAMPLE, folder / "sample")
    port = free_port()
    (folder / "sample" / "pyproject.toml").write_text(
        '[project]\nname = "sample"\nversion = "0"\n\n'
        f'[tool.parley.service]\nname = "sample"\nport = {port}\n'
        'app = "sample_app:create_app"\nmigrations = "migrations"\n'
    )
    return folder


def start_dev(
    tmp_path: Path,
    services_dir: Path,
    *extra: str,
    ports: dict[str, int] | None = None,
    name: str = "dev",
) -> DevProcess:
    ports = ports or {"pg": free_port(), "redis": free_port(), "kafka": free_port()}
    log = tmp_path / f"{name}.log"
    handle = log.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "parley.cli",
            "dev",
            "--data-dir",
            str(tmp_path / "data"),
            "--services-dir",
            str(services_dir),
            "--pg-port",
            str(ports["pg"]),
            "--redis-port",
            str(ports["redis"]),
            "--kafka-port",
            str(ports["kafka"]),
            *extra,
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    dev = DevProcess(proc, log, ports)
    _STARTED.append(dev)
    return dev


_STARTED: list[DevProcess] = []


@pytest.fixture(autouse=True)
def _stop_what_a_test_left() -> Iterator[None]:
    """A test that fails half-way still stops its `parley dev` and everything it started
    (PostgreSQL, Redis, the broker, the services), not only the parent process."""
    yield
    while _STARTED:
        dev = _STARTED.pop()
        if dev.proc.poll() is not None:
            continue
        left = dev.descendants()
        try:
            dev.interrupt(timeout=30)
        except subprocess.TimeoutExpired:
            dev.proc.kill()
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


@pytest.fixture
def running(tmp_path: Path, services_dir: Path) -> DevProcess:
    return start_dev(tmp_path, services_dir)


def sample_port(services_dir: Path) -> int:
    text = (services_dir / "sample" / "pyproject.toml").read_text()
    return int(text.split("port = ")[1].split("\n")[0])


def psql(tmp_path: Path, port: int, sql: str) -> str:
    from parley.stack.components import Postgres

    pg = Postgres(tmp_path / "data" / "postgres", port, lambda *_: None)
    return pg.psql(sql, database="parley").strip()


def test_dev_starts_answers_ready_and_leaves_nothing_behind(
    running: DevProcess, services_dir: Path, tmp_path: Path
) -> None:
    running.wait_for_line("parley | ready in", timeout=180)
    port = sample_port(services_dir)
    response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
    assert response.status_code == 200
    assert response.json()["components"]["kafka"]["status"] == "up"
    # one schema and role per service, migrated, with the version table inside it
    tables = psql(
        tmp_path,
        running.ports["pg"],
        "SELECT string_agg(table_name, ',' ORDER BY table_name) "
        "FROM information_schema.tables WHERE table_schema = 'sample'",
    )
    assert tables == "alembic_version,inbox,outbox,user_seq"
    assert (
        psql(
            tmp_path,
            running.ports["pg"],
            "SELECT schema_owner FROM information_schema.schemata WHERE schema_name = 'sample'",
        )
        == "sample"
    )
    # log lines are prefixed by component when there is no terminal
    output = running.output()
    assert "postgres | " in output
    assert "   kafka | " in output
    assert "  sample | " in output

    children = running.descendants()
    names = running.command_lines(children)
    assert "postgres" in names
    assert "redis-server" in names
    assert "tansu" in names
    assert running.interrupt() == 0
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], f"left behind: {running.command_lines(alive)}"
    for port in running.ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def test_a_restart_keeps_data_and_reset_wipes_it(tmp_path: Path, services_dir: Path) -> None:
    first = start_dev(tmp_path, services_dir, name="first")
    first.wait_for_line("parley | ready in", timeout=180)
    psql(
        tmp_path,
        first.ports["pg"],
        "CREATE TABLE public.kept (x int); INSERT INTO public.kept VALUES (42)",
    )
    assert first.interrupt() == 0

    second = start_dev(tmp_path, services_dir, ports=first.ports, name="second")
    second.wait_for_line("parley | ready in", timeout=180)
    assert psql(tmp_path, second.ports["pg"], "SELECT x FROM public.kept") == "42"
    assert second.interrupt(signal.SIGTERM) == 0  # what `docker stop` or systemd would send
    assert "SIGTERM: stopping everything" in second.output()

    third = start_dev(tmp_path, services_dir, "--reset", ports=first.ports, name="third")
    third.wait_for_line("parley | ready in", timeout=180)
    assert (
        psql(tmp_path, third.ports["pg"], "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")
        == "0"
    )
    assert third.interrupt() == 0


def test_a_taken_port_fails_fast_with_a_clear_message(tmp_path: Path, services_dir: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        dev = start_dev(
            tmp_path, services_dir, ports={"pg": free_port(), "redis": taken, "kafka": free_port()}
        )
        assert dev.proc.wait(60) == 1
    assert f"port {taken} for redis is already in use" in dev.output()
    assert dev.descendants() == []
