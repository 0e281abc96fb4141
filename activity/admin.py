from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from activity import services as activity
from activity.models import QuarantinedObject, TrailCursor, TrailFile
from portal import aws
from portal.admin import ReadOnlyAdmin


@admin.register(TrailCursor)
class TrailCursorAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "bucket", "last_key", "objects_ingested", "events_inserted", "updated_at"]


@admin.register(TrailFile)
class TrailFileAdmin(ReadOnlyAdmin):
    list_display = ["key", "events", "size", "newest_event_time", "ingested_at"]
    search_fields = ["key"]
    exclude = ["content"]


@admin.register(QuarantinedObject)
class QuarantinedObjectAdmin(ReadOnlyAdmin):
    """Trail files ingestion could not read, with the reason; staff retry them or mark them resolved."""

    list_display = ["key", "error", "size", "first_seen", "attempts", "resolved"]
    list_filter = ["resolved"]
    search_fields = ["key"]
    actions = ["retry", "resolve"]

    @admin.action(description="Read the selected files again")
    def retry(self, request: HttpRequest, queryset: QuerySet[QuarantinedObject]) -> None:
        try:
            results = [activity.quarantined_object_retry(obj=obj, actor=request.user) for obj in queryset]  # type: ignore[arg-type]
        except aws.AwsError as exc:
            self.message_user(request, f"The trail bucket could not be read: {exc}", messages.ERROR)
            return
        fixed = sum(obj.resolved for obj in results)
        self.message_user(request, f"{fixed} of {len(results)} files ingested; the others keep their error.")

    @admin.action(description="Mark resolved (their events stay out)")
    def resolve(self, request: HttpRequest, queryset: QuerySet[QuarantinedObject]) -> None:
        for obj in queryset.filter(resolved=False):
            activity.quarantined_object_resolve(obj=obj, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, "Marked resolved.")
