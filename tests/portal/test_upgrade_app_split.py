"""An existing database keeps working when approvals, reviews and activity became their own apps: the rows
written before the split are read through the new models afterwards, the tables carry the new names, and the
split can be rolled back (the tables take their old names again)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from activity.models import TrailCursor
from approvals.models import ApprovalPolicy
from grants.models import Role
from reviews.models import ReviewSettings

BEFORE_SPLIT = [
    # partners as it was then too: its later columns (e.g. `sensitive`) are not in the old apps' state.
    ("partners", "0008_account_creation_claim"),
    ("grants", "0012_role_iam_lease"),
    ("approvals", None),
    ("reviews", None),
    ("activity", None),
]
MOVED = {
    "approvals": ["approval", "approvalpolicy", "breakglassreview", "rolechange"],
    "reviews": ["reviewcampaign", "reviewitem", "reviewsettings"],
    "activity": ["activityevent", "alert", "quarantinedobject", "seensourceip", "trailcursor", "trailfile"],
}


# The events table was later rebuilt under a name of its own (activity 0007).
RENAMED_LATER = {"activity_activityevent": "activity_event"}


def _after_split(app: str, models: list[str]) -> set[str]:
    return {RENAMED_LATER.get(f"{app}_{m}", f"{app}_{m}") for m in models}


def _tables() -> set[str]:
    return set(connection.introspection.table_names())


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_split_are_read_through_the_new_apps():
    executor = _migrate(BEFORE_SPLIT)
    try:
        tables = _tables()
        for app, models in MOVED.items():
            assert {f"grants_{m}" for m in models} <= tables
            assert not {f"{app}_{m}" for m in models} & tables
        old = executor.loader.project_state(("grants", "0012_role_iam_lease")).apps
        partner = old.get_model("partners", "Partner").objects.create(name="Old Co", slug="old-co")
        role = old.get_model("grants", "Role").objects.create(
            partner=partner,
            slug="reader",
            name="Reader",
            inline_policy={"Version": "2012-10-17", "Statement": []},
            permissions_boundary_arn="arn:aws:iam::111111111111:policy/porte-boundary",
        )
        old.get_model("grants", "ApprovalPolicy").objects.create(role=role, approvals_required=2)
        old.get_model("grants", "ReviewSettings").objects.create(partner=partner, interval=timedelta(days=30))
        old.get_model("grants", "TrailCursor").objects.create(bucket="trail", prefix="o-1/", last_key="k1")
        content_type = ContentType.objects.get_or_create(app_label="grants", model="approvalpolicy")[0]
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    tables = _tables()
    for app, models in MOVED.items():
        assert _after_split(app, models) <= tables
        assert not {f"grants_{m}" for m in models} & tables
    role = Role.objects.get(slug="reader")
    assert ApprovalPolicy.objects.get(role=role).approvals_required == 2
    assert ReviewSettings.objects.get(partner__slug="old-co").interval == timedelta(days=30)
    assert TrailCursor.objects.get(prefix="o-1/").last_key == "k1"
    # Permissions and admin history keep pointing at the same content type, now under its new app.
    content_type.refresh_from_db()
    assert (content_type.app_label, content_type.model) == ("approvals", "approvalpolicy")
    # New rows go on after the old ones (the identity sequences came along with the tables).
    second = Role.objects.create(
        partner=role.partner,
        slug="writer",
        name="Writer",
        inline_policy={"Version": "2012-10-17", "Statement": []},
        permissions_boundary_arn=role.permissions_boundary_arn,
    )
    assert ApprovalPolicy.objects.create(role=second).pk > ApprovalPolicy.objects.get(role=role).pk


@pytest.mark.django_db(transaction=True)
def test_the_split_rolls_back_to_the_old_table_names():
    try:
        _migrate(BEFORE_SPLIT)
        tables = _tables()
        assert {"grants_approvalpolicy", "grants_reviewsettings", "grants_activityevent"} <= tables
        assert not {"approvals_approvalpolicy", "reviews_reviewsettings", "activity_activityevent"} & tables
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert {"approvals_approvalpolicy", "reviews_reviewsettings", "activity_event"} <= _tables()
