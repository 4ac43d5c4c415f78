from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import ApiToken, AuditEvent, Membership, OrgUnit, User
from .services import api_token_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["org_unit"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "display_name", "kind", "is_active", "last_login"]
    list_filter = ["kind", "is_active", "is_staff"]
    fieldsets = BaseUserAdmin.fieldsets + (("CommonPath", {"fields": ("kind", "display_name")}),)
    inlines = [MembershipInline]


@admin.register(OrgUnit)
class OrgUnitAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "path"]
    search_fields = ["code", "name"]
    list_filter = ["kind"]
    readonly_fields = ["path"]

    def save_model(self, request, obj, form, change):
        obj.path = obj.compute_path()
        super().save_model(request, obj, form, change)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # Tokens are minted by `manage.py create_api_token`, which shows the secret once.
        return False

    @admin.action(description="Revoke selected tokens now")
    def revoke(self, request, queryset):
        # Through the service, so that each revocation is in the audit trail.
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, actor=request.user)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "role", "action", "object_type", "object_id", "outcome"]
    list_filter = ["action", "outcome"]
    search_fields = ["actor_name", "object_id", "episode_ref", "request_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
