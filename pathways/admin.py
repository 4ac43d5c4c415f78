"""Admin for pathways: an escape hatch for administrators, not the authoring tool.

Published and retired versions, and everything in them, are read-only here (the
database refuses changes too). Edits to drafts through the admin are recorded in
the pathway's history and the audit trail like any other change.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import Pathway, PathwayChange, PathwayVersion, PlannedResource, Resource, Stage, Step
from .services import pathway_change_note_for_admin, resource_create, resource_unit_check, resource_update


def _editable(version: PathwayVersion | None) -> bool:
    return version is None or version.status == PathwayVersion.Status.DRAFT


class DraftOnlyMixin:
    """Change and delete only what belongs to a draft; new rows only into drafts."""

    def version_of(self, obj) -> PathwayVersion | None:
        """The version a row belongs to: stages and steps hold it; other rows say how to reach it."""
        return obj.version

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or _editable(self.version_of(obj)))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or _editable(self.version_of(obj)))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        pathway_change_note_for_admin(
            version=self.version_of(obj),
            actor=request.user,
            action=f"admin_{'change' if change else 'add'}_{obj._meta.model_name}",
            detail={"object": str(obj), "fields": sorted(form.changed_data)},
        )

    def delete_model(self, request, obj):
        version, label = self.version_of(obj), str(obj)
        super().delete_model(request, obj)
        pathway_change_note_for_admin(
            version=version,
            actor=request.user,
            action=f"admin_delete_{obj._meta.model_name}",
            detail={"object": label},
        )


class DraftInlineMixin:
    extra = 0

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and _editable(self.parent_version(obj))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _editable(self.parent_version(obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and _editable(self.parent_version(obj))


@admin.register(Pathway)
class PathwayAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "specialty", "owner_unit"]
    list_filter = ["specialty"]
    search_fields = ["code", "name", "description"]
    list_select_related = ["owner_unit"]

    def has_delete_permission(self, request, obj=None):
        return False  # versions and their history point at it


class StageInline(DraftInlineMixin, admin.TabularInline):
    model = Stage
    fields = ["order", "name"]

    def parent_version(self, obj):
        return obj


@admin.register(PathwayVersion)
class PathwayVersionAdmin(admin.ModelAdmin):
    list_display = ["pathway", "number", "status", "published_at", "effective_from", "retired_at"]
    list_filter = ["status"]
    search_fields = ["pathway__code", "pathway__name"]
    list_select_related = ["pathway"]
    readonly_fields = ["status", "published_by", "published_at", "retired_at", "created_by", "created_at"]
    inlines = [StageInline]

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _editable(obj)

    def has_delete_permission(self, request, obj=None):
        return False  # drafts are edited, not deleted; history (PathwayChange) points at them

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "pathway", "number"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change:
            pathway_change_note_for_admin(
                version=obj, actor=request.user, action="admin_change_version", detail={"fields": form.changed_data}
            )


class PlannedResourceInline(DraftInlineMixin, admin.TabularInline):
    model = PlannedResource
    fields = ["resource", "quantity", "headcount"]
    autocomplete_fields = ["resource"]

    def parent_version(self, obj):
        return obj.version if obj else None


@admin.register(Stage)
class StageAdmin(DraftOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "version", "order"]
    list_select_related = ["version__pathway"]
    search_fields = ["name", "version__pathway__code"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":
            kwargs["queryset"] = PathwayVersion.objects.filter(status=PathwayVersion.Status.DRAFT)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Step)
class StepAdmin(DraftOnlyMixin, admin.ModelAdmin):
    list_display = ["code", "name", "version", "stage", "mandatory", "window_min_minutes", "window_max_minutes"]
    list_filter = ["version__status", "step_type", "mandatory"]
    list_select_related = ["version__pathway", "stage"]
    search_fields = ["code", "name", "version__pathway__code"]
    filter_horizontal = ["must_follow"]
    inlines = [PlannedResourceInline]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        drafts = PathwayVersion.objects.filter(status=PathwayVersion.Status.DRAFT)
        if db_field.name == "version":
            kwargs["queryset"] = drafts
        elif db_field.name in ("stage", "anchor"):
            kwargs["queryset"] = db_field.related_model.objects.filter(version__in=drafts)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "must_follow":
            kwargs["queryset"] = Step.objects.filter(version__status=PathwayVersion.Status.DRAFT)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(PlannedResource)
class PlannedResourceAdmin(DraftOnlyMixin, admin.ModelAdmin):
    list_display = ["step", "resource", "quantity", "headcount"]
    list_select_related = ["step__version__pathway", "resource"]
    search_fields = ["step__code", "resource__code"]
    autocomplete_fields = ["resource"]

    def version_of(self, obj):
        return obj.step.version

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "step":
            kwargs["queryset"] = Step.objects.filter(version__status=PathwayVersion.Status.DRAFT)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ResourceAdminForm(forms.ModelForm):
    class Meta:
        model = Resource
        fields = ["code", "name", "kind", "unit", "salaried", "description"]

    def clean_unit(self):
        unit = self.cleaned_data["unit"]
        # The unit rule of resource_update, checked here so that the form says so instead of failing on save.
        # ``self.instance.unit`` is still the stored one: the form copies its values over after cleaning.
        try:
            resource_unit_check(resource=self.instance, unit=unit)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["unit"]) from None
        return unit


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    """Writes through ``resource_create``/``resource_update``: the same rules and audit rows as the finance pages."""

    form = ResourceAdminForm
    list_display = ["code", "name", "kind", "unit", "salaried"]
    list_filter = ["kind", "unit", "salaried"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj else []  # plans, rates and imports find a resource by its code

    def has_delete_permission(self, request, obj=None):
        return False  # plans and rates point at resources

    def save_model(self, request, obj, form, change):
        fields = {name: getattr(obj, name) for name in ("name", "kind", "unit", "salaried", "description")}
        if change:
            saved = resource_update(resource=obj, actor=request.user, **fields)
        else:
            saved = resource_create(code=obj.code, actor=request.user, **fields)
        obj.pk, obj.code = saved.pk, saved.code


@admin.register(PathwayChange)
class PathwayChangeAdmin(admin.ModelAdmin):
    """History: append-only."""

    list_display = ["version", "action", "actor", "at"]
    list_filter = ["action"]
    list_select_related = ["version__pathway", "actor"]
    search_fields = ["version__pathway__code", "note"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
