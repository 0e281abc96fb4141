"""For migrations that move models from one app to another: their content types (which permissions and admin
history point at) move with them."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def content_types_moved(from_app: str, to_app: str, models: list[str]) -> migrations.RunPython:
    def forwards(apps: Any, schema_editor: Any) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        for model in models:
            if not content_type.objects.filter(app_label=to_app, model=model).exists():
                content_type.objects.filter(app_label=from_app, model=model).update(app_label=to_app)

    def backwards(apps: Any, schema_editor: Any) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        content_type.objects.filter(app_label=to_app, model__in=models).update(app_label=from_app)

    return migrations.RunPython(forwards, backwards)
