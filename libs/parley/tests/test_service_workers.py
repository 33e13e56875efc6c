"""`parley dev --workers`: how many uvicorn worker processes each service is started with."""

from __future__ import annotations

import os
from pathlib import Path

from parley.stack.services import ServiceSpec, service_process, worker_count

SPEC = ServiceSpec("chat", 8002, "chat.main:create_app", Path("."), None)


def argv(workers: int) -> list[str]:
    return service_process(SPEC, {}, lambda _name, _line: None, workers).argv


def test_one_worker_serves_in_the_process_itself() -> None:
    assert "--workers" not in argv(1)


def test_more_workers_are_passed_to_uvicorn() -> None:
    args = argv(3)
    assert args[args.index("--workers") + 1] == "3"


def test_zero_means_one_per_core() -> None:
    assert worker_count(0) == (os.cpu_count() or 1)
    assert worker_count(2) == 2
