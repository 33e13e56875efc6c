"""Preferences written by several devices and the REST API: per-field last writer wins by
stamp, and what a device mutation asks to write (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from auth.mutations import domain as mutations
from auth.preferences import domain as preferences
from contracts.events.sync import MutationRequested
from servicekit.errors import PayloadTooLarge, ServiceError, ValidationFailed

NOW = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def stamp(unix_ms: int, counter: int = 0, node: str = "phone") -> str:
    return f"{unix_ms:015d}:{counter:05d}:{node}"


def command(op: str = "patch", **fields: Any) -> MutationRequested:
    return MutationRequested(
        client_id="phone",
        mid=7,
        entity=fields.pop("entity", "preferences"),
        op=op,
        id=fields.pop("id", "me"),
        hlc=f"{NOW_MS}-0",
        stamp=stamp(NOW_MS),
        **fields,
    )


def test_a_write_older_than_a_fields_last_write_loses_that_field_only() -> None:
    clocks = {"theme_mode": stamp(NOW_MS, node="server")}

    written = preferences.apply(
        {"theme_mode": "dark"},
        {"theme_mode": 1},
        clocks,
        {"theme_mode": "light", "font_size": 18},
        stamp(NOW_MS - 1),
    )

    assert written.changed == {"font_size": 18}
    assert written.values == {"theme_mode": "dark", "font_size": 18}
    assert written.clocks == {
        "theme_mode": stamp(NOW_MS, node="server"),
        "font_size": stamp(NOW_MS - 1),
    }


def test_on_the_same_clock_the_greater_client_id_wins() -> None:
    first = preferences.apply({}, {}, {}, {"font_size": 20}, stamp(NOW_MS, node="laptop"))

    later = preferences.apply(
        first.values, first.versions, first.clocks, {"font_size": 22}, stamp(NOW_MS, node="phone")
    )
    earlier = preferences.apply(
        later.values, later.versions, later.clocks, {"font_size": 24}, stamp(NOW_MS, node="laptop")
    )

    assert later.values["font_size"] == 22
    assert earlier.changed == {}
    assert earlier.values["font_size"] == 22


def test_a_repeated_value_takes_the_newer_clock_without_a_new_version() -> None:
    first = preferences.apply({}, {}, {}, {"font_size": 20}, stamp(NOW_MS))

    again = preferences.apply(
        first.values, first.versions, first.clocks, {"font_size": 20}, stamp(NOW_MS + 5)
    )
    late = preferences.apply(
        again.values, again.versions, again.clocks, {"font_size": 30}, stamp(NOW_MS + 2)
    )

    assert again.changed == {}
    assert again.versions == {"font_size": 1}
    assert again.clocks["font_size"] == stamp(NOW_MS + 5)
    assert late.changed == {}  # written after the later repeat had been made: it loses


def test_the_server_stamps_rest_writes_with_its_clock() -> None:
    assert preferences.server_stamp(NOW, {}) == stamp(NOW_MS, node="server")
    assert preferences.server_stamp(NOW, {"a": stamp(NOW_MS - 1, 9)}) == stamp(
        NOW_MS, node="server"
    )


def test_a_rest_write_after_a_device_clock_ahead_still_wins() -> None:
    ahead = stamp(NOW_MS + 60_000, 3, node="zz-phone")

    server = preferences.server_stamp(NOW, {"font_size": ahead, "theme_mode": stamp(NOW_MS)})

    assert server == stamp(NOW_MS + 60_000, 4, node="server")
    assert server > ahead
    assert preferences.fields_to_apply({"font_size": ahead}, {"font_size": 9}, server)[0] == {
        "font_size": 9
    }


def test_a_put_and_a_patch_write_the_fields_they_carry() -> None:
    assert mutations.requested_changes(command("put", data={"font_size": 18})) == {"font_size": 18}
    assert mutations.requested_changes(command("patch", fields={"compact_mode": True})) == {
        "compact_mode": True
    }


def test_a_delete_resets_every_field_to_its_default() -> None:
    assert mutations.requested_changes(command("delete")) == preferences.DEFAULTS


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        (command("patch", entity="folder", fields={}), "UNKNOWN_ENTITY"),
        (command("patch", id="you", fields={}), "VALIDATION_ERROR"),
        (command("put"), "VALIDATION_ERROR"),
        (command("patch"), "VALIDATION_ERROR"),
    ],
)
def test_a_malformed_command_is_refused_with_a_code(cmd: MutationRequested, code: str) -> None:
    with pytest.raises(ServiceError) as refused:
        mutations.requested_changes(cmd)

    assert refused.value.code == code


def test_answers_carry_the_mutation_key_and_the_outcome() -> None:
    applied = mutations.applied(command("delete"), 4)
    rejected = mutations.rejected(
        command("patch"), PayloadTooLarge("'extra' is too big", {"max_bytes": 16})
    )
    plain = mutations.rejected(command("patch"), ValidationFailed("bad"))

    assert (applied.client_id, applied.mid, applied.entity, applied.id) == (
        "phone",
        7,
        "preferences",
        "me",
    )
    assert (applied.status, applied.version, applied.error) == ("applied", 4, None)
    assert rejected.status == "rejected"
    assert rejected.version is None
    assert rejected.error == {
        "code": "PAYLOAD_TOO_LARGE",
        "message": "'extra' is too big",
        "details": {"max_bytes": 16},
    }
    assert plain.error == {"code": "VALIDATION_ERROR", "message": "bad"}
