"""The SCIM 2.0 base URL (/scim/v2/, one for every partner: the token says whose directory is asking) and the
staff actions on a partner's directory token."""

from django.urls import path, re_path
from django_scim import views as scim_views

from directory import views
from directory.views import scim_view

# django-scim2's routes, with Porte's views for the resources (the names are the ones its adapters reverse).
scim_urlpatterns = [
    re_path(r"^$", scim_view(scim_views.SCIMView, implemented=False), name="root"),
    re_path(r"^\.search$", scim_view(scim_views.SearchView, implemented=False), name="search"),
    re_path(r"^Users/\.search$", scim_view(views.UserSearchView), name="users-search"),
    re_path(r"^Users(?:/(?P<uuid>[^/]+))?$", scim_view(views.UsersView), name="users"),
    re_path(r"^Groups/\.search$", scim_view(views.GroupSearchView), name="groups-search"),
    re_path(r"^Groups(?:/(?P<uuid>[^/]+))?$", scim_view(views.GroupsView), name="groups"),
    re_path(r"^Me$", scim_view(scim_views.SCIMView, implemented=False), name="me"),
    re_path(
        r"^ServiceProviderConfig$",
        scim_view(scim_views.ServiceProviderConfigView),
        name="service-provider-config",
    ),
    re_path(
        r"^ResourceTypes(?:/(?P<uuid>[^/]+))?$",
        scim_view(scim_views.ResourceTypesView),
        name="resource-types",
    ),
    re_path(r"^Schemas(?:/(?P<uuid>[^/]+))?$", scim_view(scim_views.SchemasView), name="schemas"),
    re_path(r"^Bulk$", scim_view(scim_views.SCIMView, implemented=False), name="bulk"),
    # Anything else under the base URL: a SCIM 404, not a web page.
    re_path(r"^.*$", scim_view(views.NoSuchEndpoint), name="unknown"),
]

staff_urlpatterns = [
    path("staff/partners/<slug:slug>/directory/token/", views.directory_token, name="directory_token"),
    path("staff/partners/<slug:slug>/directory/off/", views.directory_off, name="directory_off"),
]
