"""The input types every service's request schemas use, so that what a client may send is
also what PostgreSQL, Redis and JSON can hold: a bad value is a 400 VALIDATION_ERROR naming
the field, never a 500 from deep inside a driver.

    class ChatIn(BaseModel):
        title: Annotated[Text, Field(max_length=200)]
        position: Int32 = 0
        metadata: JsonObject = Field(default_factory=dict)
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from pydantic import AfterValidator, Field

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def storable_text(value: str) -> str:
    """`value` if PostgreSQL can store it: valid Unicode (JSON's `"\\ud800"` decodes to a lone
    surrogate, which no UTF-8 encoder takes) and no NUL character. ValueError otherwise."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "text must be valid Unicode: a lone surrogate (\\ud800-\\udfff) is not a character"
            ) from None
    if "\x00" in value:
        raise ValueError("text may not contain NUL (\\u0000) characters")
    return value


def _storable_json(value: Any) -> Any:
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)
            _storable_json(item)
    elif isinstance(value, list):
        for item in value:
            _storable_json(item)
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not (INT64_MIN <= value <= INT64_MAX)
    ):
        raise ValueError("a number in a JSON value must fit in 64 bits")
    return value


Text = Annotated[str, AfterValidator(storable_text)]
"""A string PostgreSQL can store (see `storable_text`); add `Field(max_length=...)` as usual.
With `StringConstraints(strip_whitespace=True, ...)` write
`Annotated[str, StringConstraints(...), AfterValidator(storable_text)]` instead: constraints
placed after `Text` would strip without checking the stripped length."""

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
"""An integer for an `integer` column (or a count, a position, a page size)."""

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer for a `bigint` column (or a Unix time in milliseconds, a sequence number)."""

JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
"""A free-form JSON object (metadata, device info, settings): every key and string storable,
every integer within 64 bits."""

JsonValue = Annotated[Any, AfterValidator(_storable_json)]
"""Any free-form JSON value, checked like `JsonObject`."""


def secrets_equal(presented: str, expected: str) -> bool:
    """Constant-time comparison of a client-presented secret (a signature, a token) with the
    expected one. On bytes: `hmac.compare_digest` refuses non-ASCII str with a TypeError."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
