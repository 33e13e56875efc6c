"""Rules with no I/O: emails, passwords, refresh and email tokens, keys, preferences, flag
bucketing."""

from __future__ import annotations

import hashlib
import uuid

import jwt
import pytest

from auth.accounts.domain import clean_email, email_key, sign_in_delay
from auth.accounts.passwords import Passwords
from auth.emails.domain import email_link, email_token_hash, new_email_token
from auth.flags.domain import bucket, is_on, user_segments
from auth.preferences import domain as preferences
from auth.settings import Settings
from auth.tokens.domain import (
    new_refresh_token,
    open_successor,
    refresh_token_hash,
    seal_successor,
)
from auth.tokens.keys import key_pair, new_private_key_pem


def test_emails_are_trimmed_and_compared_without_case() -> None:
    assert clean_email("  Ada@Example.COM\n") == "Ada@Example.COM"
    assert email_key(" Ada@Example.COM ") == "ada@example.com"
    for bad in ("", "ada", "ada@", "@example.com", "a b@example.com", "ada@example"):
        with pytest.raises(ValueError, match="email"):
            clean_email(bad)


async def test_passwords_use_argon2id_with_owasp_parameters() -> None:
    settings = Settings()
    passwords = Passwords(
        settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
    )

    hashed = await passwords.hash("correct horse battery")

    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await passwords.verify(hashed, "correct horse battery")
    assert not await passwords.verify(hashed, "correct horse batterY")
    assert not await passwords.verify(None, "correct horse battery")  # unknown user
    assert not await passwords.verify("not a hash", "x")


def test_refresh_tokens_are_random_and_kept_as_sha256() -> None:
    token = new_refresh_token()

    assert token != new_refresh_token()
    assert len(refresh_token_hash(token)) == 32
    assert refresh_token_hash(token) == refresh_token_hash(token)


def test_email_links_carry_a_random_url_safe_token_kept_as_sha256() -> None:
    token = new_email_token()
    assert token != new_email_token()
    assert len(token) >= 43
    assert token.replace("-", "").replace("_", "").isalnum()
    assert email_token_hash(token) == hashlib.sha256(token.encode()).digest()
    assert email_link("https://app.example/", "password_reset", token) == (
        f"https://app.example/reset-password?token={token}"
    )
    assert email_link("http://h:8000", "verify_email", "a+b/c") == (
        "http://h:8000/verify-email?token=a%2Bb%2Fc"
    )


def test_a_keys_kid_is_its_thumbprint_and_it_signs_eddsa() -> None:
    pem = new_private_key_pem()
    pair = key_pair(pem)

    token = jwt.encode({"sub": "u"}, pair.private_key, algorithm="EdDSA", headers={"kid": pair.kid})

    assert key_pair(pem).kid == pair.kid
    assert pair.public_jwk["kty"] == "OKP"
    assert "d" not in pair.public_jwk
    assert jwt.decode(token, pair.verifier, algorithms=["EdDSA"])["sub"] == "u"


def test_preferences_version_only_fields_that_change() -> None:
    first = preferences.apply({}, {}, {}, {"theme_mode": "dark", "compact_mode": False}, "t1")

    assert first.changed == {"theme_mode": "dark"}  # compact_mode was already False
    assert first.versions == {"theme_mode": 1}
    second = preferences.apply(
        first.values,
        first.versions,
        first.clocks,
        {"theme_mode": "light", "center_mode": "wide"},
        "t2",
    )
    assert second.versions == {"theme_mode": 2, "center_mode": 1}
    assert preferences.current(first.values)["theme_mode"] == "dark"
    assert preferences.current({"gone_field": 1}) == preferences.DEFAULTS


def test_bucketing_is_deterministic_and_independent_per_flag() -> None:
    assert bucket("beta-ui", "user-1") == bucket("beta-ui", "user-1")
    users = [str(uuid.UUID(int=i)) for i in range(200)]
    assert [bucket("a", u) for u in users] != [bucket("b", u) for u in users]


def test_a_25_percent_rollout_reaches_23_to_27_percent_of_10000_users() -> None:
    users = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"user-{i}")) for i in range(10_000)]

    on = sum(
        is_on(
            key="new-composer",
            enabled=True,
            rollout_percentage=25,
            segments=[],
            user_id=u,
            member_of=["registered"],
        )
        for u in users
    )

    assert 2_300 <= on <= 2_700


def test_rollout_edges_and_segments() -> None:
    def on(pct: int, segments: list[str], member_of: set[str], enabled: bool = True) -> bool:
        return is_on(
            key="f",
            enabled=enabled,
            rollout_percentage=pct,
            segments=segments,
            user_id="u1",
            member_of=member_of,
        )

    assert on(100, [], {"registered"})
    assert not on(0, [], {"registered"})
    assert not on(100, [], {"registered"}, enabled=False)
    assert not on(100, ["beta"], {"registered"})
    assert on(100, ["beta", "registered"], {"registered"})
    assert user_segments(is_anonymous=True, role="admin", email_verified=False) == {
        "anonymous",
        "admin",
    }


def test_sign_in_delays_start_after_the_free_failures_and_double_up_to_the_cap() -> None:
    delays = [sign_in_delay(n, free=4, base_seconds=1, max_seconds=900) for n in range(1, 17)]

    assert delays == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert sign_in_delay(10_000, free=4, base_seconds=1, max_seconds=900) == 900


def test_a_successor_is_sealed_for_the_holder_of_the_used_token_only() -> None:
    used, other = new_refresh_token(), new_refresh_token()

    sealed = seal_successor(used, b'{"refresh_token": "next"}')

    assert open_successor(used, sealed) == b'{"refresh_token": "next"}'
    assert open_successor(other, sealed) is None
    assert b"next" not in sealed
