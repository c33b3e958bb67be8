"""Time is passed in, never read inside rules: SystemClock for the app, FixedClock for tests."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def today(self) -> date:
        return datetime.now().date()


@dataclass(frozen=True)
class FixedClock:
    """A clock stopped at one moment (UTC)."""

    moment: datetime

    @classmethod
    def on(cls, day: date, hour: int = 9) -> "FixedClock":
        return cls(datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc))

    def now(self) -> datetime:
        return self.moment

    def today(self) -> date:
        return self.moment.date()
