"""What ``sysg logs`` keeps: the time range, the pattern and the streams — parsed, pure.

Times become *keys* in the stored timestamp format (``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
fixed width, UTC), so a line is in range by comparing its first 27 bytes as text, the
same order the files are written in (``logfiles.py``). Nothing here reads the clock:
``now`` (epoch seconds) is an argument.

Accepted times (``--since`` / ``--until``):

* RFC 3339 with an offset: ``2026-05-14T02:05:13Z``, ``2026-05-14T04:05:13.5+02:00``;
* ``YYYY-MM-DD`` (UTC midnight), ``YYYY-MM-DD HH:MM[:SS[.ffffff]]`` or with ``T`` (UTC:
  the files are in UTC, so a time without an offset is read as UTC too);
* a relative age before ``now``: ``90s``, ``30m``, ``2h``, ``7d``, ``1w`` (decimals ok);
* ``now``, ``today`` (UTC midnight), ``yesterday``.

Every bad value is a ``SysgError`` ``SG0210`` with the flag as its field path and a hint
that shows the accepted forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from systemg.errors import Code, SysgError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_DATETIME = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:Z|[+-]\d\d:\d\d)?", re.IGNORECASE
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|k|kb|m|mb|g|gb|t|tb)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}

TIME_HINT = (
    "give a time as 2026-05-14, '2026-05-14 02:05[:13]', 2026-05-14T02:05:13Z (RFC 3339), "
    "a relative age (30m, 2h, 7d), today, yesterday or now; times without an offset are UTC"
)


def key_of(moment: datetime) -> str:
    """``moment`` as a stored timestamp key (UTC, microseconds, ``Z``)."""
    u = moment.astimezone(UTC)  # (strftime's %Y does not pad years before 1000)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}Z"
    )


def parse_age(text: str, *, flag: str = "--max-age") -> float:
    """``30m``, ``2h``, ``7d``, ``1.5w`` … as seconds."""
    match = _AGE.fullmatch(text.strip().lower())
    if not match:
        raise SysgError.of(
            Code.INVALID_VALUE,
            f"{flag} {text!r} is not an age",
            path=flag,
            hint="a number and a unit: s, m, h, d or w (e.g. 30m, 2h, 7d)",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str, now: float, *, flag: str = "--since") -> str:
    """The key of the moment ``text`` names (see the module docstring for the forms)."""
    value = text.strip()
    low = value.lower()
    current = datetime.fromtimestamp(now, UTC)
    midnight = current.replace(hour=0, minute=0, second=0, microsecond=0)
    if low == "now":
        return key_of(current)
    if low == "today":
        return key_of(midnight)
    if low == "yesterday":
        return key_of(midnight - timedelta(days=1))
    if _AGE.fullmatch(low):
        try:
            return key_of(current - timedelta(seconds=parse_age(value, flag=flag)))
        except OverflowError:  # further back than year 1: since the beginning
            return key_of(datetime.min.replace(tzinfo=UTC))
    try:
        if _DATE.fullmatch(value):
            return key_of(datetime.fromisoformat(value).replace(tzinfo=UTC))
        if _DATETIME.fullmatch(value):
            moment = datetime.fromisoformat(value.upper())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return key_of(moment)
    except (ValueError, OverflowError) as exc:  # 2026-13-40: the shape is right, the date not
        raise _bad_time(flag, text, f" ({exc})") from None
    raise _bad_time(flag, text, "")


def _bad_time(flag: str, text: str, why: str) -> SysgError:
    return SysgError.of(
        Code.INVALID_VALUE, f"{flag} {text!r} is not a time{why}", path=flag, hint=TIME_HINT
    )


def parse_size(text: str, *, flag: str = "--max-size") -> int:
    """``500``, ``10k``, ``1.5MB``, ``2g`` … as bytes (1024-based)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise SysgError.of(
            Code.INVALID_VALUE,
            f"{flag} {text!r} is not a size",
            path=flag,
            hint="a number of bytes, optionally with a unit: b, k/kb, m/mb, g/gb, t/tb "
            "(1024-based, e.g. 500M, 1.5g)",
        )
    unit = (match.group(2) or "b").lower()[0]
    return int(float(match.group(1)) * 1024 ** _SIZE_UNITS[unit])


def compile_grep(pattern: str) -> re.Pattern[str]:
    """``-g RE``: a Python regular expression, searched in the application text."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise SysgError.of(
            Code.INVALID_VALUE,
            f"--grep {pattern!r} is not a valid regular expression: {exc}",
            path="--grep",
            hint="a Python regular expression (e.g. -g 'error|warn', -g '^GET /api'); "
            "put a backslash before a literal ( ) [ ] { } . * + ? | ^ $ or \\",
        ) from None


@dataclass(frozen=True, slots=True)
class Query:
    """Which stored lines ``sysg logs`` shows. Empty fields keep everything.

    ``since`` / ``until`` are keys (``until`` inclusive); ``streams`` the stream labels
    kept; ``grep`` is searched in the application text (decoded as UTF-8, invalid bytes
    kept as surrogates so they never match by accident)."""

    since: str | None = None
    until: str | None = None
    grep: re.Pattern[str] | None = None
    streams: frozenset[str] = frozenset()

    @property
    def ranged(self) -> bool:
        return self.since is not None or self.until is not None

    def in_range(self, ts: str) -> bool:
        """A line without a timestamp (not in the stored format) is kept: it cannot be
        placed, and hiding it would hide the very line that looks wrong."""
        if not ts:
            return True
        return (self.since is None or ts >= self.since) and (self.until is None or ts <= self.until)

    def keeps(self, ts: str, stream: str, text: bytes) -> bool:
        if not self.in_range(ts):
            return False
        if self.streams and stream not in self.streams:
            return False
        if self.grep is not None:
            return self.grep.search(text.decode("utf-8", "surrogateescape")) is not None
        return True
