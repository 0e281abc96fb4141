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


# Test tiers: each test is marked by the peers it needs, found from its fixtures and its module, so a new test
# is placed without anyone remembering to mark it. `make test-fast` runs the tests that need none of them.
PEER_FIXTURES = {
    "aws": {"local_aws", "moto_endpoint"},
    "worker": {"worker_env", "celery_worker_process"},
    "idp": {"acme_idp", "rotating_idp", "live_server"},
    "postgresql": {"transactional_db"},
}
# What a test module may start itself: these names imported into it.
PEER_NAMES = {
    "worker": {"WorkerProcess"},
    "idp": {"OidcIdp", "SamlIdp", "running_idp"},
    "browser": {"sync_playwright", "async_playwright"},
    "postgresql": {"require_postgresql"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        names = set(vars(item.module)) if getattr(item, "module", None) else set()
        for marker, peer_fixtures in PEER_FIXTURES.items():
            if fixtures & peer_fixtures:
                item.add_marker(marker)
        for marker, peer_names in PEER_NAMES.items():
            if names & peer_names:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache: sign-in rate limits, throttles and flags kept there by one test (five
    wrong passwords for "sam") must not refuse the next test's sign-in, whatever order the tests run in."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    """Staff passwords in tests are hashed with a cheap hasher: the real one is slow by design (PBKDF2), and what
    is tested is who may sign in, not the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_static(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
