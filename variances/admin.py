"""Admin: the reason catalogue is edited here (retire, never delete); the rest is read-only.

Episodes, events and variances change only through the services (audit trail,
revisions), so the admin shows them without add, change or delete.
"""

from django.contrib import admin
from django.db import transaction

from accounts.audit import audit_record

from .models import Detection, Episode, ImportJob, ReasonCode, StepEvent, Variance, VarianceRevision


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "display", "category", "pathway", "default_cause", "discouraged", "retired"]
    list_filter = ["retired", "discouraged", "category", "pathway"]
    search_fields = ["code", "display"]
    actions = ["retire", "reinstate"]

    def get_readonly_fields(self, request, obj=None):
        # A code's identity is what recorded variances point at: fixed once saved.
        return ["code", "system", "pathway"] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="reason.change" if change else "reason.create",
                actor=request.user,
                obj=obj,
                detail={"code": obj.code, "fields": sorted(form.changed_data)},
            )

    @admin.action(description="Retire the selected codes (kept for past variances, no longer offered)")
    def retire(self, request, queryset):
        self._set_retired(request, queryset, True)

    @admin.action(description="Reinstate the selected codes")
    def reinstate(self, request, queryset):
        self._set_retired(request, queryset, False)

    @transaction.atomic
    def _set_retired(self, request, queryset, retired: bool) -> None:
        codes = sorted(queryset.values_list("code", flat=True))
        queryset.update(retired=retired)
        audit_record(
            action="reason.retire" if retired else "reason.reinstate",
            actor=request.user,
            object_type="variances.reasoncode",
            detail={"codes": codes},
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Episode)
class EpisodeAdmin(ReadOnlyAdmin):
    list_display = ["patient_ref", "version", "org_unit", "status", "started_at", "ended_at"]
    list_filter = ["status", "org_unit"]
    search_fields = ["patient_ref"]
    list_select_related = ["version__pathway", "org_unit"]


@admin.register(StepEvent)
class StepEventAdmin(ReadOnlyAdmin):
    list_display = ["episode", "step", "activity", "occurred_at", "source", "external_id"]
    list_filter = ["source"]
    search_fields = ["episode__patient_ref", "external_id", "activity"]
    list_select_related = ["episode__version__pathway", "step"]


@admin.register(Detection)
class DetectionAdmin(ReadOnlyAdmin):
    list_display = ["episode", "key", "variance_type", "detected_at", "minutes_outside"]
    list_filter = ["variance_type"]
    search_fields = ["episode__patient_ref", "key"]
    list_select_related = ["episode__version__pathway"]


class RevisionInline(admin.TabularInline):
    model = VarianceRevision
    extra = 0
    fields = ["number", "changed_at", "changed_by", "reason", "snapshot"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Variance)
class VarianceAdmin(ReadOnlyAdmin):
    list_display = ["episode", "variance_type", "step", "reason", "status", "review_required", "revision"]
    list_filter = ["status", "variance_type", "cause", "review_required"]
    search_fields = ["episode__patient_ref"]
    list_select_related = ["episode__version__pathway", "step", "reason"]
    inlines = [RevisionInline]


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    """Browser imports as a record: who imported which file onto which pathway, and what came of it."""

    list_display = ["requested_at", "file_name", "pathway", "org_unit", "status", "dry_run", "requested_by"]
    list_filter = ["status", "dry_run", "pathway"]
    search_fields = ["file_name", "mapping_name"]
    list_select_related = ["pathway", "org_unit", "requested_by"]
    exclude = ["upload"]
