"""Every write Porte accepts, sent hostile input by someone it is meant for: a clear 4xx, and nothing stored.

The doors come from the resolver (tests/fixtures/everyone.py), the field names from every form and serializer
Porte defines (found as subclasses, so a new field is fuzzed without anyone listing it). Each POST-capable URL
is asked by every person in its audience with every field set to one hostile value at a time, and the API with
hostile JSON, including bodies that are not JSON at all. Each request runs in a savepoint rolled back after it,
so every request meets the same world (a valid "suspend" must not hide the doors behind it). For each one:

- no server error, and no markup sent back unescaped;
- a value no field accepts (too long, a NUL, an unpaired surrogate, JSON of the wrong type or depth, a body
  that is not JSON): the answer refuses it (400/401/403/404/405/409/413/415/422/429; allauth's own pages may
  instead redirect or re-show their page) and no row in any table changed (sessions aside);
- an awkward value that a field may well accept (empty, markup, a path, control characters, a huge or negative
  number): only the two checks above, since storing `<script>` as a reason is right as long as it is escaped.

URLs whose POST takes no input (a button: revoke this token, sign out, approve) cannot refuse input; they are
listed in FIELDLESS with what they do, and only checked for server errors. A new POST URL that accepts invalid
input or changes data on it fails here until it refuses it or is listed.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import pytest
from django import forms
from django.apps import apps
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from rest_framework import serializers

from portal.models import User
from tests.fixtures.everyone import Pattern, Person, client_for, concrete_url, url_patterns
from tests.helpers import porte_apps, require_postgresql
from tests.portal.test_url_matrix import REACHES, expected_audience

# These tests reach AWS (moto): the partner world is provisioned there.
pytestmark = pytest.mark.aws

PORTE_APPS = tuple(f"{app}." for app in porte_apps())

# POST URLs that take no input: pressing the button is the whole request.
FIELDLESS = {
    "account_logout": "signs out",
    "api_token_revoke": "revokes one of the person's own tokens",
    "partner_provision": "queues the partner's account provisioning",
    "partner_idp_test": "starts a test sign-in at the partner's IdP",
    "invitation_open": "opens the onboarding invitation its URL names (the link is the token)",
    "onboarding_test": "starts the invited contact's test sign-in at their IdP",
    "onboarding_submit": "hands the contact's tested IdP in for review",
    "activity_quarantine_retry": "queues a quarantined file for another try",
    "grant_console": "opens the AWS console for the person's own grant",
    "grant_cli": "mints the person's own CLI credentials",
    "api_grant_credentials": "mints the person's own credentials",
    "api_request_approve": "approves a request (nothing to say: a denial needs a reason, an approval does not)",
    "request_approve": "the same, from the request's page",
    "activity_quarantine_resolve": "marks a quarantined file as looked at",
    "directory_token": "makes the partner's SCIM token (a new one replaces the old)",
    "directory_off": "turns the partner's directory off",
    "api_workload_approve": "approves a pipeline (staff)",
    "api_workload_disable": "disables a pipeline",
    "workload_approve": "approves a pipeline, from the partner page",
    "workload_disable": "disables a pipeline, from the partner page",
    "partner_pipeline_disable": "disables one of the partner's own pipelines",
    "mfa_generate_recovery_codes": "allauth: makes new recovery codes",
    "openid_connect_login": "allauth: redirects to the partner's IdP",
    "saml_login": "allauth: redirects to the partner's IdP",
    "saml_metadata": "allauth: Porte's SP metadata, whatever the method",
}
# Sign-in and IdP logout endpoints record every refused attempt in the audit log: that row is the point, not a leak.
AUDITED_REFUSALS = {
    "openid_connect_callback",
    "saml_acs",
    "saml_finish_acs",
    "openid_connect_backchannel_logout",
    "api_workload_exchange",
    "saml_sls",
}
# A signed-in person asking a sign-in page is sent on, whatever they post.
SENT_ON_WHEN_SIGNED_IN = {"sign_in", "account_login"}
# Who asks: the people of tests/fixtures/everyone.py in standing (those without it are refused before any view).
ASKERS = ("anonymous", "member", "approver", "partner_admin", "staff", "invited_contact")
REFUSING = {400, 401, 403, 404, 405, 409, 413, 415, 422, 429}
MARKUP = "<script>alert(1)</script>"

INVALID_FORM_VALUES: dict[str, str] = {
    "long": "x" * 3_000,  # past every text limit (2,000), short enough that the body is read
    "nul": "a\x00b",
}
AWKWARD_FORM_VALUES: dict[str, str] = {
    "empty": "",
    "markup": MARKUP + "\"' OR 1=1;--",
    "huge number": "9" * 40,
    "negative": "-1",
    "path": "../../../../etc/passwd",
    "control": "\u202e\ufeff\x07\x1b[31m",
}
INVALID_JSON_VALUES: dict[str, Any] = {
    "list": ["x"],
    "object": {"a": 1},
    "long": "x" * 10_000,
    "surrogate": "\ud800",
    "nul": "a\x00b",
    "deep": json.loads("[" * 100 + "]" * 100),
}
AWKWARD_JSON_VALUES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "huge number": 10**40,
    "negative": -1,
    "markup": MARKUP,
}
RAW_BODIES: dict[str, tuple[bytes, str]] = {
    "truncated JSON": (b'{"role": ', "application/json"),
    "deep JSON": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "not UTF-8": (b'{"reason": "\xff\xfe"}', "application/json"),
    "a bare string": (b'"approve"', "application/json"),
    "a list": (b"[1, 2, 3]", "application/json"),
    "infinity": (b'{"duration_minutes": Infinity}', "application/json"),
    "text": (b"role=1&duration=60", "text/plain"),
}


@dataclass(frozen=True)
class Payload:
    label: str
    body: bytes | dict[str, Any]
    content_type: str
    invalid: bool


def _import_porte() -> None:
    """Every module of Porte's apps, so that every form and serializer class exists to be found."""
    for package in PORTE_APPS:
        root = importlib.import_module(package.rstrip("."))
        for module in pkgutil.walk_packages(root.__path__, package):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _porte_classes(base: type) -> list[type]:
    _import_porte()
    return [c for c in set(_subclasses(base)) if c.__module__.startswith(PORTE_APPS)]


def _serializer_fields(cls: type) -> dict[str, Any]:
    return dict(cls().get_fields()) if issubclass(cls, serializers.Serializer) else {}


def field_names() -> set[str]:
    _import_porte()
    names: set[str] = set()
    for form in _subclasses(forms.BaseForm):  # Porte's and allauth's
        names |= set(getattr(form, "base_fields", {}))
    for serializer in _porte_classes(serializers.Serializer):
        names |= set(_serializer_fields(serializer))
    # read straight from request.POST by views, and allauth's names for its own forms' fields
    names |= {"reason", "next", "login", "password", "password1", "password2", "oldpassword", "email", "code"}
    return names


def database_state(tables: list[str] | None = None) -> dict[str, str]:
    """One digest per table (sessions aside; all tables, or those named), from every row's values."""
    state = {}
    for model in apps.get_models(include_auto_created=True):
        if model is Session or model._meta.proxy or not model._meta.managed:
            continue
        if tables is not None and model._meta.db_table not in tables:
            continue
        rows = model._default_manager.order_by("pk").values_list()
        state[model._meta.db_table] = sha256(repr(list(rows)).encode()).hexdigest()
    return state


def _writes() -> dict[str, int]:
    """Rows written so far in this transaction, per table: PostgreSQL's own counters (a savepoint rolled back
    leaves its writes counted), so a request's writes show without reading every table before and after."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables")
        return dict(cursor.fetchall())


def _post_patterns() -> list[Pattern]:
    return [
        p for p in url_patterns() if expected_audience(p) is not None and not p.route.startswith("admin/")
    ]


def _payloads(names: set[str], api: bool) -> Iterator[Payload]:
    if api:
        for values, invalid in ((INVALID_JSON_VALUES, True), (AWKWARD_JSON_VALUES, False)):
            for label, value in values.items():
                body = json.dumps({name: value for name in sorted(names)}).encode()
                yield Payload(f"JSON {label}", body, "application/json", invalid)
        for label, (raw, content_type) in RAW_BODIES.items():
            yield Payload(label, raw, content_type, True)
        return
    for values, invalid in ((INVALID_FORM_VALUES, True), (AWKWARD_FORM_VALUES, False)):
        for label, value in values.items():
            yield Payload(f"form {label}", {name: value for name in sorted(names)}, "", invalid)


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(table for table, digest in after.items() if before.get(table) != digest)


def _is_porte_view(pattern: Pattern) -> bool:
    view = getattr(pattern.callback, "view_class", None) or pattern.callback
    return str(getattr(view, "__module__", "")).startswith(PORTE_APPS)


def _post(client: Client, url: str, payload: Payload) -> tuple[Any, list[str]]:
    """The answer, and the tables the request changed, rolled back before returning. The tables it wrote to are
    read after the request and again once the savepoint is rolled back (as they were before it)."""
    extra = {"content_type": payload.content_type} if payload.content_type else {}
    savepoint = transaction.savepoint()
    try:
        written = _writes()
        response = client.post(url, payload.body, **extra)
        touched = sorted(table for table, n in _writes().items() if n != written.get(table, 0))
        after = database_state(touched)
    finally:
        transaction.savepoint_rollback(savepoint)
    before = database_state(touched)
    return response, _changed(before, after)


def _wrong(pattern: Pattern, actor: str, payload: Payload, response: Any, changed: list[str]) -> str | None:
    status = response.status_code
    content = b"" if getattr(response, "streaming", False) else response.content
    if status >= 500:
        return "server error"
    if MARKUP.encode() in content and response.get("Content-Type", "").startswith("text/html"):
        return "markup sent back unescaped"
    if pattern.key in FIELDLESS or not payload.invalid:
        return None
    if pattern.key in AUDITED_REFUSALS:
        changed = [table for table in changed if table != "portal_auditevent"]
    if changed:
        return f"changed {changed}"
    if pattern.key in SENT_ON_WHEN_SIGNED_IN and actor != "anonymous" and status == 302:
        return None
    if status not in REFUSING and _is_porte_view(pattern):
        return "accepted"
    return None


@pytest.mark.django_db
def test_every_write_refuses_invalid_input_and_stores_nothing(people: dict[str, Person]) -> None:
    require_postgresql("reading which tables a request wrote to")
    names = field_names()
    assert {"justification", "duration_minutes", "client_secret", "role", "reason"} <= names
    failures: list[str] = []
    requests = 0
    taking_post: set[str] = set()
    for pattern in _post_patterns():
        audience = expected_audience(pattern)
        for actor in ASKERS:
            if audience not in REACHES[actor]:
                continue
            person = people[actor]
            client = client_for(person)
            url = concrete_url(pattern, person.args)
            payloads = list(_payloads(names, url.startswith("/api/")))
            for payload in payloads[:1] if pattern.key in FIELDLESS else payloads:
                response, changed = _post(client, url, payload)
                requests += 1
                if response.status_code == 405:
                    break  # takes no POST
                taking_post.add(pattern.key)
                problem = _wrong(pattern, actor, payload, response, changed)
                if problem:
                    where = (
                        f"{actor} POST {url} ({pattern.key}) with {payload.label} -> {response.status_code}"
                    )
                    failures.append(f"{where}: {problem}")
                if response.status_code in (302, 401, 403, 404):
                    client = client_for(person)  # the answer may have ended the session: start again
    print(f"hostile input: {requests} requests to {len(taking_post)} URLs that take a POST")  # shown with -s
    stale = sorted(set(FIELDLESS) - taking_post)
    assert not stale, f"FIELDLESS names URLs that take no POST (or no longer exist): {stale}"
    assert len(taking_post) > 50
    assert not failures, f"{len(failures)} of {requests} answers are wrong:\n" + "\n".join(failures)


def test_every_text_and_number_field_is_bounded() -> None:
    """A form or serializer field without a bound accepts 10 MB of text or a number no column can hold."""
    unbounded = []
    for form in _porte_classes(forms.BaseForm):
        for name, field in getattr(form, "base_fields", {}).items():
            where = f"{form.__module__}.{form.__name__}.{name}"
            if type(field) in (forms.CharField, forms.EmailField, forms.URLField, forms.SlugField):
                if field.max_length is None:
                    unbounded.append(f"{where}: no max_length")
            elif isinstance(field, forms.IntegerField) and (
                field.max_value is None or field.min_value is None
            ):
                unbounded.append(f"{where}: no min_value/max_value")
    for serializer in _porte_classes(serializers.Serializer):
        for name, field in _serializer_fields(serializer).items():
            if field.read_only:
                continue
            where = f"{serializer.__module__}.{serializer.__name__}.{name}"
            if isinstance(field, serializers.CharField) and field.max_length is None:
                unbounded.append(f"{where}: no max_length")
            elif isinstance(field, serializers.IntegerField) and (
                field.max_value is None or field.min_value is None
            ):
                unbounded.append(f"{where}: no min_value/max_value")
            elif isinstance(field, serializers.ListField) and field.max_length is None:
                unbounded.append(f"{where}: no max_length")
    assert not unbounded, "\n".join(unbounded)


@pytest.mark.django_db
def test_the_check_sees_what_a_request_wrote_though_it_is_rolled_back() -> None:
    """`_post` can fail: a "request" that writes a row is reported as changing that table, and nothing else."""
    require_postgresql("reading which tables a request wrote to")

    class Writer:
        def post(self, url: str, body: object, **extra: object) -> str:
            User.objects.create(username="written-by-the-probe")
            return "answer"

    answer, changed = _post(Writer(), "/probe/", Payload("probe", {}, "", True))  # type: ignore[arg-type]
    assert (answer, changed) == ("answer", [User._meta.db_table])
    assert not User.objects.filter(username="written-by-the-probe").exists()
