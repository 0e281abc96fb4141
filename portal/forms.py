from __future__ import annotations

from typing import Any

from allauth.account.forms import ResetPasswordForm
from django import forms

LIFETIME_CHOICES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Where the token will live, e.g. “work laptop”: you will recognise it when revoking.",
    )
    lifetime_days = forms.TypedChoiceField(
        choices=LIFETIME_CHOICES, coerce=int, initial=90, label="Expires after"
    )


class StaffResetPasswordForm(ResetPasswordForm):
    """allauth's reset form, for staff accounts only: a partner person has no password to reset, so an address of
    theirs gets nothing (the page answers alike for every address)."""

    def clean_email(self) -> str:
        email: str = super().clean_email()
        found: list[Any] = getattr(self, "users", [])
        self.__dict__["users"] = [user for user in found if user.is_staff]
        return email

    def save(self, request: Any, **kwargs: Any) -> str:
        if not self.__dict__.get("users"):
            return str(self.cleaned_data["email"])
        return str(super().save(request, **kwargs))
