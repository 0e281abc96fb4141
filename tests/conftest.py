"""Real peers for the suite: moto in server mode, the oidc-provider IdP, a Celery worker process, Chromium."""

from __future__ import annotations

import os

# Dummy credentials for moto; set before boto3 reads its environment.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)

import pytest

pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.peers",
    "tests.fixtures.domain",
    "tests.fixtures.everyone",
]


@pytest.fixture(autouse=True)
def _plain_static(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
