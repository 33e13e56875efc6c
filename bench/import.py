"""Benchmark of the import readers: dry-run messages/s over a generated ChatGPT-style
`conversations.json`, and the reader's memory while it streams the file.

What this measures: `sync.imports.dry_run` (detect → stream with ijson → normalise every
node into archive records → count), on a file generated here with
constant memory: `--messages` mapping nodes in conversations of `--per-conversation`, each
conversation with a regenerated reply (a branch point), hidden system node, model slugs and
float epoch times, about 1 KB per message like real exports. RSS growth is the peak RSS
(ru_maxrss) after reading minus the peak before (the imports loaded, the file written with
constant memory). The rate is given per wall-clock second and per CPU second of the
reading process (on a shared machine the wall clock also counts everyone else's work).
The database side of an import (chat's ingest against `COPY FROM`) is not in these figures.

Targets (issue 14): dry run >= 100,000 messages/s; RSS < 300 MB for a 1 GB file.
The exit status is always 0.

    uv run python bench/import.py                       # 1,000,000 messages (~1 GB)
    uv run python bench/import.py --messages 200000 --json
    uv run python bench/import.py --file conversations.json   # an existing file
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT / "services" / "sync" / "src"))

_TEXT = (
    "Here is a longer answer that reads like a real reply: it has a few sentences, some "
    "code such as `kubectl rollout undo deployment/web`, a list of steps and the usual "
    "caveats about staging and production, which is what makes real exports about a "
    "kilobyte per message once the metadata is counted. "
)


def _node(
    node_id: str, parent: str | None, children: list[str], role: str, when: float, text: str
) -> str:
    message = {
        "id": node_id,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": when,
        "update_time": None,
        "content": {"content_type": "text", "parts": [text if role != "user" else "How?"]},
        "status": "finished_successfully",
        "end_turn": role == "assistant",
        "weight": 0.0 if role == "system" else 1.0,
        "metadata": {"model_slug": "gpt-4o", "request_id": node_id[-12:]}
        if role == "assistant"
        else {"is_visually_hidden_from_conversation": role == "system"},
        "recipient": "all",
        "channel": None,
    }
    node = {"id": node_id, "message": message, "parent": parent, "children": children}
    return json.dumps(node)


def write_chatgpt_export(
    out: IO[str], messages: int, per_conversation: int, padding: int = 0
) -> int:
    """A conversations.json of `messages` message nodes, written without holding it;
    `padding` characters more in every reply make the file bigger per message."""
    text = _TEXT + "x" * padding
    out.write("[")
    written = 0
    conversation = 0
    while written < messages:
        count = min(per_conversation, messages - written)
        start = 1_700_000_000.0 + conversation * 3600.125
        prefix = f"c{conversation:07d}"
        ids = [f"{prefix}-m{i:05d}" for i in range(count)]
        # the last message is a second reply to the prompt before the last one: a branch
        parents: list[str | None] = [None, *ids[:-1]]
        if count >= 4:
            parents[-1] = ids[-3]
        children: dict[str, list[str]] = {i: [] for i in ids}
        for node_id, parent in zip(ids, parents, strict=True):
            if parent is not None:
                children[parent].append(node_id)
        out.write("," if conversation else "")
        out.write(
            f'{{"title": "Conversation {conversation}", "create_time": {start}, '
            f'"update_time": {start + count}, "conversation_id": "{prefix}", "id": "{prefix}", '
            f'"default_model_slug": "gpt-4o", "current_node": "{ids[-1]}", "mapping": {{'
        )
        for i, node_id in enumerate(ids):
            role = "system" if i == 0 else ("user" if i % 2 else "assistant")
            node = _node(node_id, parents[i], children[node_id], role, start + i + 0.123456, text)
            out.write(("," if i else "") + f'"{node_id}": {node}')
        out.write("}}")
        written += count
        conversation += 1
    out.write("]")
    return conversation


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(path: Path) -> dict[str, object]:
    """Dry-run the file in this process: rate, counts, issues and peak RSS growth."""
    from sync.imports import dry_run

    before = _rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    report = dry_run([path])
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    messages = report.counts.get("message", 0)
    return {
        "file_bytes": path.stat().st_size,
        "counts": report.counts,
        "issues": len(report.issues),
        "seconds": round(seconds, 2),
        "messages_per_second": round(messages / seconds),
        "cpu_seconds": round(cpu_seconds, 2),
        "messages_per_cpu_second": round(messages / cpu_seconds),
        "rss_before_mb": round(before, 1),
        "rss_growth_mb": round(_rss_mb() - before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-conversation", type=int, default=100)
    parser.add_argument("--padding", type=int, default=0, help="extra characters per reply")
    parser.add_argument("--file", type=Path, help="read this file instead of generating one")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        path = args.file
        generated = 0.0
        if path is None:
            path = Path(tmp) / "conversations.json"
            started = time.perf_counter()
            with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
                write_chatgpt_export(out, args.messages, args.per_conversation, args.padding)
            generated = time.perf_counter() - started
        figures = measure(path)
        figures["generate_seconds"] = round(generated, 1)
    if args.json:
        print(json.dumps(figures))
        return
    size_mb = int(figures["file_bytes"]) / 1e6  # type: ignore[call-overload]
    print(f"file          {size_mb:,.0f} MB ({figures['counts']})")
    print(f"dry run       {figures['seconds']} s, {figures['messages_per_second']:,} messages/s")
    # on a shared machine the wall clock counts other processes' time too
    print(
        f"dry run (CPU) {figures['cpu_seconds']} s, "
        f"{figures['messages_per_cpu_second']:,} messages per CPU second"
    )
    print(f"RSS           {figures['rss_before_mb']} MB before, +{figures['rss_growth_mb']} MB")
    print(f"issues        {figures['issues']}")
    print(f"python        {sys.version.split()[0]} on {os.uname().machine}")


if __name__ == "__main__":
    main()
