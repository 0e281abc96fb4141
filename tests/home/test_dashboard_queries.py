"""The dashboard's cost in queries stays small: its roles are read once (the page and the request form's choices
share them)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.fixtures.domain import build_partner, make_member, sign_in_as

pytestmark = pytest.mark.django_db

MOST = 8  # #16's target for the dashboard


def test_the_dashboard_reads_the_roles_once_and_asks_at_most_eight_queries() -> None:
    acme = build_partner("acme", provision=False)
    alice = make_member(acme.partner, "alice")
    client = sign_in_as(Client(), alice)
    client.get("/")  # the session's first page after sign-in records when it was seen

    with CaptureQueriesContext(connection) as queries:
        page = client.get("/")

    assert page.status_code == 200 and "Request access" in page.content.decode()
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum('FROM "grants_role"' in q for q in sql) == 1, sql
    assert len(sql) <= MOST, "\n".join(sql)
