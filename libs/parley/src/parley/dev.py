"""`parley dev`: the embedded stack plus every service, supervised until Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from parley.stack.components import ComponentFailed
from parley.stack.embedded import EmbeddedStack, Ports
from parley.stack.ports import PortTaken, wait_listening
from parley.stack.process import ManagedProcess
from parley.stack.services import ServiceSpec, discover, migrate_argv, service_process

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "white"]


class DevFailed(RuntimeError):
    """`parley dev` cannot go on; the message says why and what to do."""


@dataclass
class Row:
    component: str
    url: str
    health: str = "starting"


@dataclass
class DevRunner:
    data_dir: Path
    services_dir: Path
    ports: Ports
    console: Console
    reset: bool = False
    service_ports: dict[str, int] = field(default_factory=dict)  # overrides the manifests
    workers: int = 1  # uvicorn worker processes per service; 0: one per core
    rows: dict[str, Row] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _print_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal

    def log_line(self, name: str, line: str) -> None:
        """One child's log line, prefixed with its name (coloured on a terminal)."""
        if not line:
            return
        with self._print_lock:
            if self.interactive:
                color = COLORS[hash(name) % len(COLORS)]
                self.console.print(
                    f"[{color}]{name:>8} |[/] {line}", markup=True, highlight=False, soft_wrap=True
                )
            else:
                print(f"{name:>8} | {line}", flush=True)

    def say(self, message: str) -> None:
        with self._print_lock:
            if self.interactive:
                self.console.print(f"[bold]parley[/] {message}", highlight=False)
            else:
                print(f"parley | {message}", flush=True)

    def run(self) -> int:
        """Start everything, supervise until asked to stop, stop everything. Exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        services = [
            replace(s, port=self.service_ports.get(s.name, s.port))
            for s in discover(self.services_dir)
        ]
        stack = EmbeddedStack(self.data_dir, self.ports, self.log_line, reset=self.reset)
        try:
            self.say(f"starting PostgreSQL, Redis and the Kafka broker (data in {self.data_dir})")
            urls = stack.start(services)
            for c in stack.components:
                self.rows[c.name] = Row(c.name, c.url, "up")
            self.say(
                "infrastructure up: " + ", ".join(f"{c.name} {c.url}" for c in stack.components)
            )
            for spec in services:
                self._migrate(spec, stack)
            for spec in services:
                proc = service_process(
                    spec, stack.service_env(spec, services), self.log_line, self.workers
                )
                proc.start()
                self.processes.append(proc)
                self.rows[spec.name] = Row(spec.name, f"http://127.0.0.1:{spec.port}")
            if not services:
                self.say(f"no services under {self.services_dir}: infrastructure only")
            return self._supervise(stack, services, urls.database)
        except (PortTaken, ComponentFailed, DevFailed) as exc:
            self.say(f"cannot start: {exc}")
            return 1
        finally:
            self._shutdown(stack)

    def _migrate(self, spec: ServiceSpec, stack: EmbeddedStack) -> None:
        if spec.migrations is None:
            return
        self.say(f"migrating {spec.name}")
        argv = [
            *migrate_argv(spec),
            "--database-url",
            stack.urls.database_as(spec.name),
            "--schema",
            spec.name,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=spec.root, check=False)
        for line in (result.stdout + result.stderr).splitlines():
            self.log_line(spec.name, line)
        if result.returncode != 0:
            raise DevFailed(f"the migrations of {spec.name} failed (see above)")

    def _supervise(self, stack: EmbeddedStack, services: list[ServiceSpec], db: str) -> int:
        ready_announced = False
        started = time.monotonic()
        live = (
            Live(self._table(), console=self.console, refresh_per_second=2, transient=False)
            if self.interactive
            else None
        )
        if live:
            live.start()
        try:
            while not self._stop.is_set():
                for component in stack.components:
                    if not component.running():
                        self.say(f"{component.name} stopped unexpectedly; shutting down")
                        return 1
                    self.rows[component.name].health = (
                        "up" if wait_listening(component.port, 0.5) else "down"
                    )
                for spec, proc in zip(services, self.processes, strict=True):
                    self.rows[spec.name].health = self._service_health(spec, proc)
                all_ready = all(r.health in ("up", "ready") for r in self.rows.values())
                if all_ready and not ready_announced:
                    ready_announced = True
                    took = time.monotonic() - started
                    self.say(
                        f"ready in {took:.1f}s — "
                        + "; ".join(f"{r.component} {r.url}" for r in self.rows.values())
                    )
                    self.say("press Ctrl-C to stop everything")
                if live:
                    live.update(self._table())
                self._stop.wait(1.0)
            return 0
        finally:
            if live:
                live.stop()

    def _service_health(self, spec: ServiceSpec, proc: ManagedProcess) -> str:
        code = proc.exit_code()
        if code is not None:
            return f"exited ({code})"
        try:
            response = httpx.get(f"http://127.0.0.1:{spec.port}/health/ready", timeout=1.0)
        except httpx.HTTPError:
            return "starting"
        if response.status_code == 200:
            return "ready"
        down = [
            k for k, v in response.json().get("components", {}).items() if v.get("status") != "up"
        ]
        return "waiting for " + ", ".join(down) if down else f"HTTP {response.status_code}"

    def _table(self) -> Table:
        table = Table(title="Parley (embedded)", expand=False)
        table.add_column("component")
        table.add_column("url")
        table.add_column("health")
        for row in self.rows.values():
            style = "green" if row.health in ("up", "ready") else "yellow"
            if row.health.startswith(("exited", "down")):
                style = "red"
            table.add_row(row.component, row.url, f"[{style}]{row.health}[/]")
        return table

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self.say(f"{signal.Signals(signum).name}: stopping everything")

    def _shutdown(self, stack: EmbeddedStack) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        stack.stop()
        self.say("stopped")
