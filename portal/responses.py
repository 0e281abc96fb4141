"""Answers to bad input, the same everywhere: a 400 that says what was wrong in words a person understands."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def validation_messages(exc: ValidationError) -> list[str]:
    return [str(message) for message in exc.messages]


def form_errors(form: forms.BaseForm) -> str:
    """Every error of a bound form, each prefixed with its field's label."""
    parts: list[str] = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = f"{field.label or name.replace('_', ' ').capitalize()}: " if field is not None else ""
        parts.extend(f"{label}{error}" for error in errors)
    return " ".join(parts)


def service_errors(
    exc: ValidationError, renames: dict[str, str] | None = None
) -> dict[str | None, list[str]]:
    """A service's ValidationError by the field the caller knows (services speak of `duration`, a form or the
    API of `duration_minutes`: `renames` says so); None holds what is about no field."""
    if not hasattr(exc, "error_dict"):
        return {None: list(exc.messages)}
    renames = renames or {}
    return {renames.get(field, field): list(errors) for field, errors in exc.message_dict.items()}


def error_detail(exc: ValidationError) -> dict[str, Any]:
    """A service's ValidationError as an API answer's body: its messages by field, or under `detail` when it is
    about no field."""
    return exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}


def add_service_errors(
    form: forms.BaseForm, exc: ValidationError, renames: dict[str, str] | None = None
) -> None:
    """Put a service's ValidationError on the form: on the field it names (after `renames`), else on the form."""
    for field, errors in service_errors(exc, renames).items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)


def bad_request(
    request: HttpRequest, message: str, *, back: str = "", status: int = 400, **extra: Any
) -> HttpResponse:
    """Nothing was done: say why, and offer the way back (the browser's back button keeps what was typed)."""
    return render(
        request, "portal/bad_request.html", {"message": message, "back": back, **extra}, status=status
    )


def invalid(request: HttpRequest, exc: ValidationError, *, back: str = "", prefix: str = "") -> HttpResponse:
    """bad_request with what a service's ValidationError says."""
    return bad_request(request, prefix + " ".join(validation_messages(exc)), back=back)
