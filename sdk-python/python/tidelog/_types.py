"""Small Python-side types and conversions used by the native module."""

import datetime as _dt
from typing import NamedTuple, Optional

__all__ = ["TopicPartition"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MS = _dt.timedelta(milliseconds=1)


class TopicPartition(NamedTuple):
    """A topic and a partition number (hashable; usable as a dict key)."""

    topic: str
    partition: int


def _ms_to_datetime(ms: int) -> _dt.datetime:
    """Milliseconds since the epoch -> timezone-aware UTC datetime (exact)."""
    return _EPOCH + _dt.timedelta(milliseconds=ms)


def _datetime_to_ms(when) -> int:
    """A datetime (naive = UTC) or a number of ms -> ms since the epoch."""
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        return (when - _EPOCH) // _MS
    if isinstance(when, _dt.date):
        return _datetime_to_ms(_dt.datetime(when.year, when.month, when.day))
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return int(when)
    raise TypeError(
        f"expected a datetime or milliseconds since the epoch, got {type(when).__name__}"
    )


def _resolve_future(fut, value, error: Optional[BaseException]) -> None:
    """Runs on the event loop: completes an asyncio future from Rust."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


def _resolve_message(fut, message, error: Optional[BaseException], consumer) -> None:
    """Like _resolve_future, for a consumer's next record: if the future was
    cancelled after the record was handed over, the consumer rewinds to it
    so it is not lost."""
    if fut.done():
        if message is not None:
            consumer._rewind(message)
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(message)
