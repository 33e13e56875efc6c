"""A child process the stack owns: started so it dies with us, logs prefixed, stopped cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

LineSink = Callable[[str, str], None]


def _die_with_parent(argv: Sequence[str], sig: int) -> list[str]:
    """Prefix argv so the kernel sends `sig` to the child if its parent dies, even by SIGKILL:
    no orphan postgres, redis or broker outlives `parley dev` (util-linux `setpriv`)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return list(argv)
    return [setpriv, f"--pdeathsig={signal.Signals(sig).name.removeprefix('SIG')}", "--", *argv]


class ManagedProcess:
    """One child process with its output pumped, line by line, to a sink."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        sink: LineSink,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.sink = sink
        self.env = env
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> None:
        """Spawn the process; its stdout and stderr go to the sink."""
        self.proc = subprocess.Popen(
            _die_with_parent(self.argv, self.stop_signal),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            user=self.user,
            # its own process group: a terminal's Ctrl-C reaches only `parley dev`, which
            # then stops services before the servers they depend on
            process_group=0,
        )
        self._pump = threading.Thread(target=self._read, name=f"log-{self.name}", daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.sink(self.name, raw.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask politely, then insist: the process is gone when this returns."""
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, self.stop_signal)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        except ProcessLookupError:
            pass
        if self._pump:
            self._pump.join(2)
