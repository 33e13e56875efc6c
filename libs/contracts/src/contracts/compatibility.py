"""JSON-Schema snapshots of every event and the rules that keep a v1 additive.

Within a topic version, a change may add an event or an optional field, widen a type,
or add an enum value. It may not remove or rename a field, change a type, make an
optional field required, add a required field, or remove an enum value.

`python -m contracts.compatibility --write` refreshes the committed snapshot after an
additive change (a docstring of an event is its schema's description, so it counts too);
without `--write` it compares without writing, as the test does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from contracts.envelope import envelope_json_schema
from contracts.topics import ALL_TOPICS, Topic

Schema = dict[str, Any]
SNAPSHOT_PATH = Path(__file__).resolve().parents[2] / "schemas" / "events.snapshot.json"


def snapshot(topics: Iterable[Topic] = ALL_TOPICS) -> Schema:
    """{"envelope": schema, "topics": {topic: {event_type: payload schema}}}."""
    return {
        "envelope": envelope_json_schema(),
        "topics": {t.name: {e.event_type: e.model_json_schema() for e in t.events} for t in topics},
    }


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every breaking difference between two snapshots, as readable sentences."""
    problems = _compare_object(
        "envelope", old["envelope"], old["envelope"], new["envelope"], new["envelope"]
    )
    for topic, old_events in old["topics"].items():
        new_events = new["topics"].get(topic)
        if new_events is None:
            problems.append(f"topic {topic} was removed")
            continue
        for event_type, old_schema in old_events.items():
            new_schema = new_events.get(event_type)
            if new_schema is None:
                problems.append(f"{topic}: event {event_type} was removed")
            else:
                where = f"{topic}/{event_type}"
                problems += _compare_object(where, old_schema, old_schema, new_schema, new_schema)
    return problems


def _resolve(node: Schema, root: Schema) -> Schema:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return dict(root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {}))
    return node


def _types(node: Schema, root: Schema) -> set[str]:
    """The JSON types a schema node admits (refs and anyOf followed)."""
    node = _resolve(node, root)
    if "anyOf" in node:
        return set().union(*(_types(n, root) for n in node["anyOf"]))
    if "enum" in node or "const" in node:
        return {"enum"}
    kind = node.get("type")
    if isinstance(kind, list):
        return set(kind)
    if kind is None:
        return {"any"}
    return {kind}


def _enum_values(node: Schema, root: Schema) -> set[str] | None:
    node = _resolve(node, root)
    if "anyOf" in node:
        parts = [_enum_values(n, root) for n in node["anyOf"]]
        found = [p for p in parts if p is not None]
        return set().union(*found) if found else None
    if "enum" in node:
        return {json.dumps(v) for v in node["enum"]}
    if "const" in node:
        return {json.dumps(node["const"])}
    return None


def _compare_node(
    where: str, old: Schema, old_root: Schema, new: Schema, new_root: Schema
) -> list[str]:
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if "any" not in new_types and not old_types <= new_types:
        return [f"{where}: type changed from {sorted(old_types)} to {sorted(new_types)}"]
    problems: list[str] = []
    old_enum, new_enum = _enum_values(old, old_root), _enum_values(new, new_root)
    if old_enum is not None and new_enum is not None and not old_enum <= new_enum:
        problems.append(f"{where}: enum values removed: {sorted(old_enum - new_enum)}")
    old_r, new_r = _resolve(old, old_root), _resolve(new, new_root)
    if old_r.get("type") == "object" and new_r.get("type") == "object":
        problems += _compare_object(where, old_r, old_root, new_r, new_root)
    if old_r.get("type") == "array" and new_r.get("type") == "array":
        problems += _compare_node(
            f"{where}[]", old_r.get("items", {}), old_root, new_r.get("items", {}), new_root
        )
    return problems


def _compare_object(
    where: str, old: Schema, old_root: Schema, new: Schema, new_root: Schema
) -> list[str]:
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", [])), set(new.get("required", []))
    for name, old_prop in old_props.items():
        if name not in new_props:
            problems.append(f"{where}.{name}: field removed or renamed")
            continue
        if name in new_req and name not in old_req:
            problems.append(f"{where}.{name}: optional field made required")
        problems += _compare_node(f"{where}.{name}", old_prop, old_root, new_props[name], new_root)
    for name in sorted(new_req - set(old_props)):
        problems.append(f"{where}.{name}: new field is required (old producers do not send it)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the committed snapshot against the code, or `--write` a new one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="refresh the committed snapshot")
    args = parser.parse_args(argv)
    current = snapshot()
    committed = json.loads(SNAPSHOT_PATH.read_text()) if SNAPSHOT_PATH.exists() else None
    if committed is not None:
        problems = breaking_changes(committed, current)
        if problems:
            print("breaking changes — add a new topic version instead:", *problems, sep="\n  ")
            return 1
    if args.write:
        SNAPSHOT_PATH.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT_PATH.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT_PATH}")
    elif committed != current:
        print("the snapshot is out of date: run python -m contracts.compatibility --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
