"""A large export streams: reading a ~200 MB generated ChatGPT file grows the reader's
memory by what one conversation needs, not by the file's size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[4] / "bench" / "import.py"


@pytest.mark.slow
def test_a_200_mb_file_is_read_in_bounded_memory():
    env = {**os.environ, "PYTHONPATH": str(BENCH.parents[1] / "services" / "sync" / "src")}
    result = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "80000", "--padding", "3800", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=240,
    )
    figures = json.loads(result.stdout)
    assert figures["file_bytes"] > 200_000_000
    assert figures["counts"] == {"conversation": 800, "message": 80000}
    assert figures["issues"] == 0
    # one conversation of 100 messages is well under a megabyte; the file is 200 MB
    assert figures["rss_growth_mb"] < 60
