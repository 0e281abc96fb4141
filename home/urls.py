from django.urls import path

from home import staff_home, views

urlpatterns = [
    path("", views.dashboard, name="home"),
    path("requests/new/", views.request_access, name="request_access"),
    path("grants/<int:grant_id>/", views.grant_detail, name="grant_detail"),
    path("staff/", staff_home.staff_home, name="staff_home"),
]
