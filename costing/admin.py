"""Admin for costing. Rates and budgets are maintained on the finance pages; the
admin is the administrators' escape hatch, and writes the same audit rows.
Report runs and episode cost summaries are derived data: read-only here."""

from django.contrib import admin

from accounts.audit import audit_record

from .models import Budget, CostRate, EpisodeCost, EpisodeCostLine, ReportRun


class AuditedAdmin(admin.ModelAdmin):
    audit_prefix = ""

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
        audit_record(
            action=f"{self.audit_prefix}.{'update' if change else 'create'}",
            actor=request.user,
            obj=obj,
            detail={"object": str(obj), "fields": sorted(form.changed_data), "via": "admin"},
        )

    def delete_model(self, request, obj):
        label, pk = str(obj), obj.pk
        super().delete_model(request, obj)
        audit_record(
            action=f"{self.audit_prefix}.delete",
            actor=request.user,
            object_type=obj._meta.label_lower,
            object_id=str(pk),
            detail={"object": label, "via": "admin"},
        )


@admin.register(CostRate)
class CostRateAdmin(AuditedAdmin):
    audit_prefix = "cost_rate"
    list_display = ["resource", "financial_year", "rate", "currency", "price_year", "source", "updated_at"]
    list_filter = ["financial_year", "resource__kind"]
    search_fields = ["resource__code", "resource__name", "source"]
    list_select_related = ["resource"]
    autocomplete_fields = ["resource"]
    readonly_fields = ["updated_at", "updated_by"]


@admin.register(Budget)
class BudgetAdmin(AuditedAdmin):
    audit_prefix = "budget"
    list_display = ["pathway", "financial_year", "episodes", "updated_at"]
    list_filter = ["financial_year"]
    list_select_related = ["pathway"]
    search_fields = ["pathway__code"]
    readonly_fields = ["updated_at", "updated_by"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReportRun)
class ReportRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "status", "progress", "org_unit", "requested_by", "requested_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["org_unit", "requested_by"]


@admin.register(EpisodeCost)
class EpisodeCostAdmin(ReadOnlyAdmin):
    list_display = ["episode", "pathway", "org_unit", "started_on", "expected", "actual", "computed_at"]
    list_filter = ["pathway"]
    list_select_related = ["episode", "pathway", "org_unit"]


@admin.register(EpisodeCostLine)
class EpisodeCostLineAdmin(ReadOnlyAdmin):
    list_display = ["episode_cost", "step", "resource", "standard_cost", "actual_cost", "cause"]
    list_select_related = ["episode_cost", "step", "resource"]
