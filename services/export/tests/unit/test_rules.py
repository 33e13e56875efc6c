"""Link signing, request validation and the archive stream's integrity checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.archive import dump_line
from export.archive_source import StreamCut, checked
from export.jobs.domain import percent
from export.jobs.links import LinkExpired, LinkInvalid, LinkSigner
from export.jobs.schemas import DateRange, ExportRequest
from parley.sample_archive import sample_archive

SIGNER = LinkSigner(b"k" * 32, ttl_seconds=3600)


def test_a_signed_link_is_good_until_it_expires() -> None:
    expires, signature = SIGNER.sign("job-1", "user-1", now=1_000)
    assert expires == 4_600
    SIGNER.check("job-1", "user-1", expires, signature, now=4_599)
    with pytest.raises(LinkExpired):
        SIGNER.check("job-1", "user-1", expires, signature, now=4_600)


@pytest.mark.parametrize(
    ("job", "user", "shift"),
    [("job-2", "user-1", 0), ("job-1", "user-2", 0), ("job-1", "user-1", 86_400)],
)
def test_a_link_cannot_be_moved_to_another_job_owner_or_expiry(
    job: str, user: str, shift: int
) -> None:
    expires, signature = SIGNER.sign("job-1", "user-1", now=1_000)
    with pytest.raises(LinkInvalid):
        SIGNER.check(job, user, expires + shift, signature, now=1_000)
    with pytest.raises(LinkInvalid):
        LinkSigner(b"other key").check("job-1", "user-1", expires, signature, now=1_000)


@pytest.mark.parametrize("signature", ["é" * 64, "\ud800", "", "0" * 1000])
def test_a_signature_of_any_text_is_just_invalid(signature: str) -> None:
    expires, _ = SIGNER.sign("job-1", "user-1", now=1_000)
    with pytest.raises(LinkInvalid):  # not a TypeError (a 500) for non-ASCII text
        SIGNER.check("job-1", "user-1", expires, signature, now=1_000)


@pytest.mark.parametrize(
    "body",
    [
        {"format": "docx"},
        {"export_type": "everything"},
        {
            "filters": {
                "date_range": {"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}
            }
        },
        {"filters": {"date_range": {"start": "2024-01-02", "end": "2024-01-01"}}},
        {"filters": {"chat_ids": []}},
        {"filters": {"chat_ids": ["not a chat id"]}},
        {"options": {"include_everything": True}},
    ],
)
def test_bad_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExportRequest.model_validate(body)


@pytest.mark.parametrize(
    ("raw", "start", "end"),
    [
        (
            b'{"start": "2024-03-01", "end": "2024-03-01"}',
            datetime(2024, 3, 1, tzinfo=UTC),
            datetime(2024, 3, 2, tzinfo=UTC),
        ),
        (
            b'{"start": "2024-03-01T10:15:30.123456", "end": "2024-03-01T11:00:00"}',
            datetime(2024, 3, 1, 10, 15, 30, 123456, tzinfo=UTC),
            datetime(2024, 3, 1, 11, tzinfo=UTC),
        ),
        (b'{"end": "2024-02-29"}', None, datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_dates_and_zone_less_times_are_utc(
    raw: bytes, start: datetime | None, end: datetime | None
) -> None:
    dates = DateRange.model_validate_json(raw)
    assert (dates.start, dates.end) == (start, end)
    assert all(d is None or d.utcoffset() == timedelta(0) for d in (dates.start, dates.end))


def test_a_plain_request_takes_the_defaults() -> None:
    request = ExportRequest.model_validate({})
    assert (request.export_type, request.format) == ("all", "json")
    assert request.options.include_timestamps is True


def test_progress_percentages() -> None:
    assert percent(0, 0, "queued") == 0.0
    assert percent(5, 20, "processing") == 25.0
    assert percent(0, 0, "completed") == 100.0


async def _lines(lines: list[bytes]) -> AsyncIterator[str]:
    for line in lines:
        yield line.decode()


async def test_a_whole_stream_passes() -> None:
    records = list(sample_archive())
    assert [r async for r in checked(_lines([dump_line(r) for r in records]))] == records


@pytest.mark.parametrize("cut", ["no end", "no header", "end disagrees", "after end", "garbage"])
async def test_a_stream_that_is_not_whole_is_refused(cut: str) -> None:
    lines = [dump_line(r) for r in sample_archive()]
    if cut == "no end":
        lines = lines[:-1]
    elif cut == "no header":
        lines = lines[1:]
    elif cut == "end disagrees":
        del lines[3]  # a message went missing in transit
    elif cut == "after end":
        lines.append(lines[1])
    else:
        lines.insert(2, b'{"type": "message", "id": 1}\n')
    with pytest.raises(StreamCut):
        _ = [r async for r in checked(_lines(lines))]
