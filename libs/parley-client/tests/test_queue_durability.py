"""A process killed (SIGKILL) right after queueing: every mutation it queued is there when
the app starts again, numbered and stamped as before, and numbering goes on from there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from parley_client import Hlc, Key, LocalStore

QUEUE_AND_DIE = """
import os, signal, sys
from parley_client import Key, LocalStore
store = LocalStore(sys.argv[1], client_id="phone")
for n in range(int(sys.argv[2])):
    store.enqueue(Key("message", f"m{n}"), "put", data={"content": f"text {n}"})
print("queued", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit
"""


def test_a_killed_process_loses_nothing_it_queued(tmp_path: Path) -> None:
    db = tmp_path / "client.db"
    run = subprocess.run(
        [sys.executable, "-c", QUEUE_AND_DIE, str(db), "50"], capture_output=True, text=True
    )
    assert run.returncode == -9, run.stderr
    assert run.stdout.strip() == "queued"
    store = LocalStore(db)
    queued = store.queued()
    assert store.client_id == "phone"
    assert [m.mid for m in queued] == list(range(1, 51))
    assert [m.data for m in queued] == [{"content": f"text {n}"} for n in range(50)]
    stamps = [Hlc.parse(m.hlc) for m in queued]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 50
    after = store.enqueue(Key("message", "m50"), "delete")
    assert after.mid == 51
    assert Hlc.parse(after.hlc) > stamps[-1]


def test_a_store_left_open_is_read_by_the_next_process(tmp_path: Path) -> None:
    # as after a crash: the first handle is never closed, a second one opens the file
    crashed = LocalStore(tmp_path / "client.db")
    crashed.enqueue(Key("folder", "f1"), "put", data={"title": "Work"})
    restarted = LocalStore(tmp_path / "client.db")
    assert [(m.mid, m.data) for m in restarted.queued()] == [(1, {"title": "Work"})]
