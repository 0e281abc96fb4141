"""Keyset pages of a partner's activity: every event exactly once, newest first, and (on PostgreSQL) each page
read from the partner's (partner, event_time, id) index without a sort step."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from activity import services as activity
from activity.models import ActivityEvent
from activity.selectors import Keyset, activity_page, activity_page_query

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def test_pages_walk_every_event_once_newest_first(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(microsecond=0)
    # Many events share a second (as in real trails): the eventID breaks the ties.
    records = simulator.session_records(alice_cli, reads=20, writes=5, denied=3)
    for i, record in enumerate(records):
        record["eventTime"] = records[i // 4 * 4]["eventTime"]
    simulator.write_log(account, records, at=at)
    activity.activity_ingest()
    everything = ActivityEvent.objects.filter(partner=acme.partner)

    seen, after, pages = [], None, 0
    while True:
        page = activity_page(everything, after=after, size=7)
        seen += page.events
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert pages == 5 and len(seen) == len(records) == len({e.event_id for e in seen})
    assert [e.pk for e in seen] == sorted((e.pk for e in seen), reverse=True)


def test_a_deep_page_is_an_index_range_scan_sorted_only_within_the_hour(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (run the suite with DATABASE_URL=postgres://...)")
    simulator.write_log(acme.partner.aws_account_id, simulator.session_records(alice_cli), at=timezone.now())
    activity.activity_ingest()
    last = ActivityEvent.objects.order_by("event_time").last()
    assert last is not None
    after = Keyset(last.event_time + timedelta(seconds=1), last.event_id)
    query = activity_page_query(ActivityEvent.objects.filter(partner=acme.partner), after=after)
    with connection.cursor() as cursor:
        # A handful of rows would be read by a sequential scan: forbid it, so the plan shows what the index can do.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        # The table is partitioned by month: each partition's copy of the index (ordered, merged, never sorted).
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'activity_event_partner_idx'::regclass"
        )
        copies = {name for (name,) in cursor.fetchall()} | {"activity_event_partner_idx"}
    scans = re.findall(r"Index Scan(?: Backward)? using (\S+)", plan)
    assert scans and set(scans) <= copies, plan
    # The index gives the hours in order: the events are sorted within an hour as they come (an incremental
    # sort, presorted by the hour), never all of them at once.
    assert re.search(r"Incremental Sort  \(", plan) and "Presorted Key: activity_event.hour" in plan, plan
    assert not re.search(r"(^|->  )Sort  \(", plan, re.MULTILINE), plan
