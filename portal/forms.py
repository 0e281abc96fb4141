from __future__ import annotations

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
