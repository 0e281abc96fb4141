from django.contrib import admin

from partners.models import IdentityProvider, Membership, Partner, PartnerDomain
from portal.admin import ReadOnlyAdmin


class PartnerDomainInline(admin.TabularInline):
    model = PartnerDomain
    extra = 0


@admin.register(Partner)
class PartnerAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "status", "aws_account_id", "aws_region"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    inlines = [PartnerDomainInline]
    readonly_fields = ["status", "aws_account_id", "external_id", "created_at"]


@admin.register(IdentityProvider)
class IdentityProviderAdmin(ReadOnlyAdmin):
    list_display = ["display_name", "provider_id", "partner", "protocol", "is_enabled"]
    exclude = ["client_secret_encrypted"]
    readonly_fields = ["created_at"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "partner", "is_partner_admin", "is_active", "last_sign_in_at"]
    list_filter = ["partner", "is_partner_admin", "is_active"]
    readonly_fields = ["user", "partner", "identity_provider", "groups", "created_at", "last_sign_in_at"]
