"""Schedule cases with known answers (cronie's rules), shared by the unit tests of the schedule
math and the end-to-end tests of `vaultsched next`, its oracle."""

from __future__ import annotations

# (zone, schedule, naive start in that zone, the fires that follow it)
CASES: list[tuple[str, str, str, list[str]]] = [
    # Spring forward in Warsaw: 02:30 does not exist on 2026-03-29; fires at 03:00 CEST.
    (
        "Europe/Warsaw",
        "30 2 * * *",
        "2026-03-28T12:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    # 09:00 stays 09:00 local across the change.
    (
        "Europe/Warsaw",
        "0 9 * * *",
        "2026-03-28T12:00",
        ["2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"],
    ),
    # Fall back in New York: 01:30 happens twice on 2026-11-01, fires once.
    (
        "America/New_York",
        "30 1 * * *",
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    # ... but a starred hour field fires every real occurrence (cronie).
    (
        "America/New_York",
        "*/20 1 * * *",
        "2026-11-01T00:59",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:20:00-04:00",
            "2026-11-01T01:40:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:20:00-05:00",
            "2026-11-01T01:40:00-05:00",
            "2026-11-02T01:00:00-05:00",
        ],
    ),
    # Day-of-month OR day-of-week when both are restricted: the 13th or any Friday.
    (
        "UTC",
        "0 0 13 * FRI",
        "2026-02-01T00:00",
        ["2026-02-06T00:00:00+00:00", "2026-02-13T00:00:00+00:00", "2026-02-20T00:00:00+00:00"],
    ),
    # `*/2` in the day-of-month field is unrestricted (cronie): AND with Monday.
    (
        "UTC",
        "0 0 */2 * MON",
        "2026-02-01T00:00",
        ["2026-02-09T00:00:00+00:00", "2026-02-23T00:00:00+00:00", "2026-03-09T00:00:00+00:00"],
    ),
    # 09:00 stays 09:00 in New York across its spring-forward (never drifts to 10:00).
    (
        "America/New_York",
        "0 9 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00"],
    ),
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 2026-10-04.
    (
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2026-10-03T12:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    # Spring forward in London: a wildcard job is not run for the skipped 01:07 (cronie).
    (
        "Europe/London",
        "7 * * * *",
        "2025-03-29T23:30",
        ["2025-03-30T00:07:00+00:00", "2025-03-30T02:07:00+01:00", "2025-03-30T03:07:00+01:00"],
    ),
    # `*` inside a list covers the whole field.
    (
        "UTC",
        "0 *,3 * * *",
        "2026-01-01T00:30",
        ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00", "2026-01-01T03:00:00+00:00"],
    ),
    # 29 February on a Sunday: decades apart, 40 years across 2100 (no leap year).
    (
        "UTC",
        "0 0 29 2 */7",
        "2026-01-01T00:00",
        [
            "2032-02-29T00:00:00+00:00",
            "2060-02-29T00:00:00+00:00",
            "2088-02-29T00:00:00+00:00",
            "2128-02-29T00:00:00+00:00",
        ],
    ),
    # A day-name range may end on Sunday.
    (
        "UTC",
        "0 9 * * SAT-SUN",
        "2026-01-01T00:00",
        ["2026-01-03T09:00:00+00:00", "2026-01-04T09:00:00+00:00", "2026-01-10T09:00:00+00:00"],
    ),
]
