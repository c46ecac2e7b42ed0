"""Dwell times on PostgreSQL (``pickup_dwell``, migration 0020): both ends of each order's dwell,
recorded from a batch's events in one statement, and read back for the reminders and the report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from service.domain.dwell import Dwell, PickupTime, dwell_seconds
from service.domain.dwell_report import PERCENTILES, DwellGroup, Grouping
from service.store.base import PostgresBase, translated

# One row per order. The batch is folded per order first (an order's ready and pickup may both be
# in it); each end keeps its earliest time, the place its first ready event's. ``earlier`` reads
# the rows as they were before this statement (one snapshot for the whole statement), so a dwell
# is returned only by the statement that completed it: read again, it is not returned twice.
_RECORD: Final = """
WITH batch AS (
    SELECT order_id,
           min(at) FILTER (WHERE kind = 'ready') AS ready_at,
           min(at) FILTER (WHERE kind = 'picked_up') AS picked_up_at,
           (array_agg(place ORDER BY n) FILTER (WHERE kind = 'ready' AND place IS NOT NULL))[1] AS place
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
        WITH ORDINALITY AS t(order_id, kind, at, place, n)
    GROUP BY order_id
), earlier AS (
    SELECT d.order_id FROM pickup_dwell d JOIN batch USING (order_id)
    WHERE d.ready_at IS NOT NULL AND d.picked_up_at IS NOT NULL
), written AS (
    INSERT INTO pickup_dwell AS d (order_id, place, ready_at, picked_up_at)
    SELECT order_id, place, ready_at, picked_up_at FROM batch
    ON CONFLICT (order_id) DO UPDATE SET
        place = coalesce(d.place, excluded.place),
        ready_at = least(d.ready_at, excluded.ready_at),
        picked_up_at = least(d.picked_up_at, excluded.picked_up_at),
        updated_at = now()
    RETURNING d.order_id, d.place, d.ready_at, d.picked_up_at
)
SELECT order_id, place, ready_at, picked_up_at FROM written
WHERE ready_at IS NOT NULL AND picked_up_at IS NOT NULL
    AND order_id NOT IN (SELECT order_id FROM earlier)
"""

_PICKED_UP: Final = """
SELECT order_id FROM pickup_dwell WHERE order_id = ANY($1::text[]) AND picked_up_at IS NOT NULL
"""

# Completed dwells collected in [$1, $2), by pickup place or by the pickup's weekday (ISO: 1 is
# Monday) and hour in Hong Kong time. The index on picked_up_at bounds the scan to the range.
_GROUP_KEYS: Final = {
    Grouping.ALL: ("NULL::text", "NULL::int", "NULL::int"),
    Grouping.PLACE: ("coalesce(place, '')", "NULL::int", "NULL::int"),
    Grouping.WEEKDAY_HOUR: (
        "NULL::text",
        "extract(isodow FROM picked_up_at AT TIME ZONE 'Asia/Hong_Kong')::int",
        "extract(hour FROM picked_up_at AT TIME ZONE 'Asia/Hong_Kong')::int",
    ),
}


def _summary_sql(grouping: Grouping) -> str:
    place, weekday, hour = _GROUP_KEYS[grouping]
    fractions = ", ".join(str(p) for p in PERCENTILES)
    return f"""
SELECT place, weekday, hour, count(*) AS n,
       percentile_cont(ARRAY[{fractions}]::float8[]) WITHIN GROUP (ORDER BY dwell_s) AS p
FROM (
    SELECT {place} AS place, {weekday} AS weekday, {hour} AS hour,
           greatest(0, extract(epoch FROM picked_up_at - ready_at))::float8 AS dwell_s
    FROM pickup_dwell
    WHERE ready_at IS NOT NULL AND picked_up_at IS NOT NULL AND picked_up_at >= $1 AND picked_up_at < $2
) AS d
GROUP BY place, weekday, hour
ORDER BY place, weekday, hour
"""  # noqa: S608  # the pieces are this module's constants, never input


class DwellTimes(PostgresBase):
    """``pickup_dwell``: the ``PickupStore`` port, and the dwell report's query."""

    async def record_pickup_times(self, times: Sequence[PickupTime]) -> list[Dwell]:
        if not times:
            return []
        args = (
            [t.order_id for t in times],
            [t.end.value for t in times],
            [t.at for t in times],
            [t.place for t in times],
        )
        async with translated():
            rows = await self._pool.fetch(_RECORD, *args)
        return [
            Dwell(
                r["order_id"],
                r["place"] or "",
                dwell_seconds(r["ready_at"], r["picked_up_at"]),
                r["picked_up_at"],
            )
            for r in rows
        ]

    async def picked_up(self, order_ids: Sequence[str]) -> set[str]:
        if not order_ids:
            return set()
        async with translated():
            rows = await self._pool.fetch(_PICKED_UP, list(order_ids))
        return {r["order_id"] for r in rows}

    async def dwell_recorded(self) -> bool:
        """Whether this database has the dwell times' table (migration 0020 applied)."""
        async with translated():
            return await self._pool.fetchval("SELECT to_regclass('pickup_dwell') IS NOT NULL") is True

    async def dwell_summary(self, start: datetime, end: datetime, grouping: Grouping) -> list[DwellGroup]:
        """Count and percentiles of the dwells whose pickup is in [start, end), in groups."""
        async with translated():
            rows = await self._pool.fetch(_summary_sql(grouping), start, end)
        return [
            DwellGroup(r["place"], r["weekday"], r["hour"], int(r["n"]), tuple(float(x) for x in r["p"]))
            for r in rows
        ]
