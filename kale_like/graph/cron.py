"""Cron expressions for recurring runs, checked before any network call.

Users write the usual 5 fields (`0 2 * * 0`); KFP's scheduler wants 6, seconds first
(`0 0 2 * * 0`, robfig format, `?` allowed for day fields). Both are accepted; the 6-field form is
what is sent, and the next fire times are computed with croniter to show the user what they asked.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from kale_like.errors import KaleLikeError

_SECONDS = re.compile(r"^(\*|[0-5]?\d(-[0-5]?\d)?(/\d+)?|\*/\d+)(,[0-5]?\d)*$")


def to_kfp_cron(expression: str) -> tuple[str, str]:
    """(6-field KFP form, 5-field form croniter checks); raises KaleLikeError when invalid."""
    fields = expression.split()
    if len(fields) == 5:
        five, seconds = fields, "0"
    elif len(fields) == 6:
        seconds, five = fields[0], fields[1:]
        if not _SECONDS.match(seconds):
            raise KaleLikeError(f"schedule '{expression}': '{seconds}' is not a valid seconds field", None,
                                "6-field KFP cron starts with seconds, e.g. '0 0 2 * * 0'")
    else:
        raise KaleLikeError(f"schedule '{expression}' has {len(fields)} fields", None,
                            "use 5 fields (minute hour day month weekday), e.g. '0 2 * * 0' = Sundays 02:00")
    if re.search(r"(^|[,-])7($|[,-/])", five[4]):
        raise KaleLikeError(f"schedule '{expression}': KFP's scheduler counts weekdays 0-6 (0 = Sunday)", None,
                            "write 0 for Sunday instead of 7")
    plain = " ".join(f.replace("?", "*") for f in five)
    from croniter import croniter

    if not croniter.is_valid(plain):
        raise KaleLikeError(f"schedule '{expression}' is not a valid cron expression", None,
                            "e.g. '0 2 * * 0' (Sundays at 02:00 UTC) or '*/15 * * * *' (every 15 minutes)")
    return f"{seconds} {' '.join(five)}", plain


def next_fire_times(plain: str, count: int = 3, start: datetime | None = None) -> list[datetime]:
    """The next `count` times (UTC) a 5-field expression fires."""
    from croniter import croniter

    iterator = croniter(plain, start or datetime.now(timezone.utc))
    return [iterator.get_next(datetime) for _ in range(count)]
