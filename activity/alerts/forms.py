from __future__ import annotations

from django import forms

from activity.models import Alert


class AlertFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("open", "Open"), ("acknowledged", "Acknowledged"), ("all", "All")], required=False
    )
    rule = forms.ChoiceField(choices=[("", "Any rule"), *Alert.Rule.choices], required=False)
    severity = forms.ChoiceField(choices=[("", "Any severity"), *Alert.Severity.choices], required=False)
    partner = forms.SlugField(required=False, max_length=64)


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        max_length=2000, help_text="What you found or did (kept in the audit log).", widget=forms.TextInput
    )
