from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator
from django.forms.models import ModelChoiceIterator

from grants import limits
from grants.authoring import MAX_POLICY_CHARS
from grants.models import Role


class _ChoicesOnce(ModelChoiceIterator):
    """The choices from the field's queryset as it is cached: Django's iterator asks the database each time the
    choices are read (the widget reads them twice: its options, and whether the first one is empty)."""

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class RoleChoiceField(forms.ModelChoiceField):
    iterator = _ChoicesOnce

    def label_from_instance(self, obj: Role) -> str:
        return f"{obj.name} (up to {obj.max_duration_minutes} minutes)"


class AccessRequestForm(forms.Form):
    role = RoleChoiceField(queryset=Role.objects.none(), empty_label=None)
    duration_minutes = forms.IntegerField(
        min_value=limits.REQUEST_MIN_MINUTES,
        max_value=limits.ROLE_MAX_MINUTES,
        initial=60,
        label="Duration (minutes)",
        error_messages={"min_value": limits.SHORTEST_REQUEST},
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=limits.TEXT_MAX_CHARS,
        help_text="What you will do, and the ticket it belongs to.",
    )
    # Break-glass: immediate access without approval where the role allows it (loud, reviewed after).
    break_glass = forms.BooleanField(
        required=False,
        label="Break-glass: emergency access now, without approval (everyone is told; reviewed afterwards)",
    )

    def __init__(self, *args, roles, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = roles  # type: ignore[attr-defined]

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.cleaned_data["duration_minutes"])


class RoleForm(forms.Form):
    template = forms.ChoiceField(required=False, label="Start from a template", choices=[("", "—")])
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=48, help_text="The IAM role is named porte-<slug>.")
    description = forms.CharField(
        required=False, max_length=limits.TEXT_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    inline_policy = forms.CharField(
        max_length=MAX_POLICY_CHARS,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false"}),
        label="Inline policy (JSON)",
    )
    permissions_boundary_arn = forms.CharField(max_length=2048, label="Permissions boundary ARN")
    max_duration_minutes = forms.IntegerField(
        min_value=limits.ROLE_MIN_MINUTES,
        max_value=limits.ROLE_MAX_MINUTES,
        initial=60,
        label="Maximum duration (minutes)",
    )
    eligible_groups = forms.CharField(
        required=False,
        max_length=limits.GROUPS_MAX * (limits.GROUP_NAME_MAX_CHARS + 2),
        help_text="IdP groups whose members may request this role, separated by spaces or commas.",
    )

    def __init__(self, *args: Any, template_names: list[str], editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [("", "—")] + [(t, t) for t in template_names]  # type: ignore[attr-defined]
        if editing:
            self.fields["slug"].disabled = True
            del self.fields["template"]

    def clean_inline_policy(self) -> dict[str, object]:
        try:
            document = json.loads(self.cleaned_data["inline_policy"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
        if not isinstance(document, dict):
            raise forms.ValidationError("The policy must be a JSON object.")
        return document

    def clean_eligible_groups(self) -> list[str]:
        return group_names(self.cleaned_data["eligible_groups"])

    @property
    def max_duration(self) -> timedelta:
        return timedelta(minutes=self.cleaned_data["max_duration_minutes"])


class ExtendForm(forms.Form):
    """Rendered by the grant's page from these fields: the bounds the browser shows are the ones enforced."""

    minutes = forms.IntegerField(
        min_value=limits.EXTEND_MIN_MINUTES,
        max_value=limits.EXTEND_MAX_MINUTES,
        initial=30,
        widget=forms.NumberInput(attrs={"class": "minutes"}),
    )
    justification = forms.CharField(
        max_length=limits.TEXT_MAX_CHARS,
        widget=forms.TextInput(
            attrs={"placeholder": "Why you need more time", "aria-label": "Why you need more time"}
        ),
    )

    def __init__(self, *args: Any, most: int = limits.EXTEND_MAX_MINUTES, **kwargs: Any) -> None:
        """`most`: the most minutes this grant may be extended by now (approvals.services.extension_most_minutes)."""
        super().__init__(*args, **kwargs)
        minutes = self.fields["minutes"]
        minutes.max_value = most  # type: ignore[attr-defined]
        minutes.validators = [v for v in minutes.validators if not isinstance(v, MaxValueValidator)]
        minutes.validators.append(MaxValueValidator(most))
        minutes.widget.attrs["max"] = most
        minutes.initial = min(30, most)


class RevokeForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=limits.TEXT_MAX_CHARS,
        widget=forms.TextInput(attrs={"placeholder": "Reason (recorded)", "aria-label": "Reason (recorded)"}),
    )


def group_names(text: str) -> list[str]:
    """IdP group names typed into a field (spaces or commas between), bounded in length and number."""
    names = sorted({g for g in re.split(r"[\s,]+", text) if g})
    if len(names) > limits.GROUPS_MAX:
        raise forms.ValidationError(f"At most {limits.GROUPS_MAX} groups.")
    for name in names:
        if len(name) > limits.GROUP_NAME_MAX_CHARS:
            raise forms.ValidationError(
                f"“{name[:40]}…” is longer than {limits.GROUP_NAME_MAX_CHARS} characters: is it a group name?"
            )
    return names
