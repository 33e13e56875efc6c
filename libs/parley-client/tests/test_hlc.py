from __future__ import annotations

import pytest

from parley_client import Hlc, Key, LocalStore, tick


def test_the_clock_follows_the_wall_and_never_goes_back() -> None:
    first = tick(None, 1_000)
    assert str(first) == "1000-0"
    same_ms = tick(first, 1_000)
    assert same_ms == Hlc(1_000, 1)
    wall_went_back = tick(same_ms, 900)
    assert wall_went_back == Hlc(1_000, 2)
    assert wall_went_back > same_ms
    assert tick(wall_went_back, 1_001) == Hlc(1_001, 0)


def test_a_full_counter_moves_to_the_next_millisecond() -> None:
    assert tick(Hlc(5, 99_999), 5) == Hlc(6, 0)


@pytest.mark.parametrize("text", ["", "12", "12-", "-1", "a-1", "1-2-3", "1-123456", "1.5-2"])
def test_only_ms_dash_counter_parses(text: str) -> None:
    with pytest.raises(ValueError, match="hybrid logical clock"):
        Hlc.parse(text)


def test_parse_reads_what_str_writes() -> None:
    assert Hlc.parse(str(Hlc(1733400000000, 42))) == Hlc(1733400000000, 42)


def test_stamps_stay_monotonic_across_a_reopen_with_a_clock_that_went_back(tmp_path) -> None:
    wall = [10_000]
    store = LocalStore(tmp_path / "c.db", wall_ms=lambda: wall[0])
    stamps = [Hlc.parse(store.enqueue(Key("folder", f"f{n}"), "delete").hlc) for n in range(3)]
    store.close()
    wall[0] = 5_000  # the device's clock was set back while the app was closed
    reopened = LocalStore(tmp_path / "c.db", wall_ms=lambda: wall[0])
    stamps.append(Hlc.parse(reopened.enqueue(Key("folder", "f3"), "delete").hlc))
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 4
    assert stamps[-1] == Hlc(10_000, 3)
