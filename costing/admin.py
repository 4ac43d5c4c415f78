"""Admin for costing. Rates and budgets are maintained on the finance pages; the
admin is the administrators' escape hatch, and writes through the same services
(``cost_rate_set``, ``budget_set`` and their deletes), so the audit trail keeps
what a figure was before as well as after, whichever way it was changed, and one
by one when several are deleted at once. Report runs and episode cost summaries
are derived data: read-only here (a summary is recomputed, never edited or
deleted by hand; a deleted one would only be recomputed by the next report).
"""

from django.contrib import admin
from django.db import transaction

from .models import Budget, CostRate, EpisodeCost, EpisodeCostLine, ReportRun
from .rates import cost_rate_delete, cost_rate_set
from .standard import budget_delete, budget_set

ADMIN_REASON = "Changed in the Django admin"


@admin.register(CostRate)
class CostRateAdmin(admin.ModelAdmin):
    list_display = ["resource", "financial_year", "rate", "currency", "price_year", "source", "updated_at"]
    list_filter = ["financial_year", "resource__kind"]
    search_fields = ["resource__code", "resource__name", "source"]
    list_select_related = ["resource"]
    autocomplete_fields = ["resource"]
    # The calculator's working is set by the calculator (finance pages, API), never typed beside a figure.
    readonly_fields = ["capacity_cost", "theoretical_capacity_minutes", "practical_factor", "updated_at", "updated_by"]

    def get_readonly_fields(self, request, obj=None):
        # Resource and year identify the rate: changing them would be another rate (add that one instead).
        return [*self.readonly_fields, "resource", "financial_year"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        rate, _outcome = cost_rate_set(
            resource=obj.resource,
            financial_year=obj.financial_year,
            rate=obj.rate,
            price_year=obj.price_year,
            source=obj.source,
            includes=obj.includes,
            currency=obj.currency,
            actor=request.user,
            reason=ADMIN_REASON,
        )
        # The admin goes on with ``obj`` (its messages, log entry and redirect).
        obj.pk, obj.updated_at, obj.updated_by = rate.pk, rate.updated_at, rate.updated_by

    def delete_model(self, request, obj):
        cost_rate_delete(rate=obj, actor=request.user, reason=ADMIN_REASON)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        # "Delete selected": each rate audited with what it was, as one by one.
        for rate in queryset.select_related("resource"):
            cost_rate_delete(rate=rate, actor=request.user, reason=ADMIN_REASON)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["pathway", "financial_year", "episodes", "updated_at"]
    list_filter = ["financial_year"]
    list_select_related = ["pathway"]
    search_fields = ["pathway__code"]
    readonly_fields = ["updated_at", "updated_by"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "pathway", "financial_year"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        budget, _outcome = budget_set(
            pathway=obj.pathway, financial_year=obj.financial_year, episodes=obj.episodes, actor=request.user
        )
        obj.pk, obj.updated_at, obj.updated_by = budget.pk, budget.updated_at, budget.updated_by

    def delete_model(self, request, obj):
        budget_delete(budget=obj, actor=request.user)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        for budget in queryset.select_related("pathway"):
            budget_delete(budget=budget, actor=request.user)


class DerivedAdmin(admin.ModelAdmin):
    """Computed rows: to look at, never to add, edit or delete by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReportRun)
class ReportRunAdmin(DerivedAdmin):
    list_display = ["id", "kind", "status", "progress", "org_unit", "requested_by", "requested_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["org_unit", "requested_by"]


@admin.register(EpisodeCost)
class EpisodeCostAdmin(DerivedAdmin):
    list_display = ["episode", "pathway", "org_unit", "started_on", "expected", "actual", "computed_at"]
    list_filter = ["pathway"]
    list_select_related = ["episode", "pathway", "org_unit"]


@admin.register(EpisodeCostLine)
class EpisodeCostLineAdmin(DerivedAdmin):
    list_display = ["episode_cost", "step", "resource", "standard_cost", "actual_cost", "cause"]
    list_select_related = ["episode_cost", "step", "resource"]
