"""The wall clock, read in one place: each stage is handed `utc_now` as its clock (a test hands
its own), and the commands read it once each."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
