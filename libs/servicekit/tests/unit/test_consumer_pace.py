"""A subscription's pace picks how long its consumer's fetches wait: the settings'
`consumer_*_wait_ms` of that pace, for the fetch and for the pause after an empty poll."""

from __future__ import annotations

from typing import get_args

import pytest

from contracts.topics import AUTH_USER
from servicekit.runtime import Pace, Subscription, consumer_config
from servicekit.settings import ServiceSettings


@pytest.mark.parametrize("pace", get_args(Pace))
def test_each_pace_waits_its_own_setting(pace: Pace) -> None:
    settings = ServiceSettings(
        consumer_prompt_wait_ms=11,
        consumer_live_wait_ms=22,
        consumer_background_wait_ms=33,
        consumer_max_retries=5,
    )
    config = consumer_config(settings, pace)
    expected = {"prompt": 11, "live": 22, "background": 33}[pace]
    assert (config.fetch_max_wait_ms, config.batch_timeout_ms) == (expected, expected)
    assert config.max_retries == 5


def test_a_subscription_is_background_unless_it_says_who_waits() -> None:
    async def handler(*_: object) -> None:
        return None

    assert Subscription(AUTH_USER, handler).pace == "background"


def test_the_defaults_keep_a_waiting_push_prompt_and_an_idle_consumer_cheap() -> None:
    settings = ServiceSettings()
    prompt = consumer_config(settings, "prompt").fetch_max_wait_ms
    live = consumer_config(settings, "live").fetch_max_wait_ms
    background = consumer_config(settings, "background").fetch_max_wait_ms
    assert prompt <= 20 < live <= 100 < background
