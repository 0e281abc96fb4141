"""Porte's SCIM endpoint checked by a peer that is not ours: the scim2-tester suite, speaking through scim2-client
to Porte's WSGI application in this process (every request through the whole middleware stack)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from directory import services
from portal.models import User
from tests.fixtures.domain import World

pytestmark = pytest.mark.django_db

# What Porte does not offer, on purpose: searching Users and Groups together at the root (POST /.search).
EXPECTED_SKIPS = {"search_with_attributes"}


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """Django's request signals would close the test's database connection after each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _client(token: str) -> WSGISCIMClient:
    return WSGISCIMClient(
        app=get_wsgi_application(),
        base_url="http://127.0.0.1:8000/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_scim2_tester_passes_every_check(acme: World, staff: User, in_test_transaction: None) -> None:
    _connection, token = services.directory_token_rotate(partner=acme.partner, actor=staff)
    results = check_server(_client(token))
    counts = Counter(result.status.name for result in results)
    print(f"scim2-tester: {dict(counts)}")  # with -s
    failed = [f"{r.title}: {r.reason}" for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    assert not failed, "\n".join(failed)
    skipped = {r.title for r in results if r.status == Status.SKIPPED}
    assert skipped <= EXPECTED_SKIPS, skipped
    # Users and Groups were both created, read, replaced, patched and deleted.
    assert counts["SUCCESS"] >= 55
    assert {"object_creation", "object_replacement", "object_deletion", "check_replace_attribute"} <= {
        r.title for r in results if r.status == Status.SUCCESS
    }


def test_a_token_that_is_not_the_partners_fails_the_tester_at_once(
    acme: World, in_test_transaction: None
) -> None:
    results = check_server(_client("porte_scim_aaaaaaaa_" + "A" * 40))
    assert results and all(r.status == Status.ERROR for r in results)
