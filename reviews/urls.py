from django.urls import path

from reviews import views

urlpatterns = [
    path("staff/reviews/", views.staff_campaigns, name="review_staff_list"),
    path("staff/reviews/start/", views.staff_campaign_start, name="review_staff_start"),
    path("staff/reviews/<int:campaign_id>/", views.staff_campaign_detail, name="review_staff_detail"),
    path(
        "staff/reviews/<int:campaign_id>/report.<str:fmt>",
        views.staff_campaign_report,
        name="review_staff_report",
    ),
    path(
        "staff/reviews/items/<int:item_id>/follow-up-done/",
        views.staff_follow_up_done,
        name="review_follow_up_done",
    ),
    path(
        "staff/partners/<slug:slug>/review-settings/",
        views.staff_review_settings,
        name="review_settings",
    ),
    path("reviews/", views.partner_reviews, name="partner_reviews"),
    path("reviews/items/<int:item_id>/decide/", views.item_decide, name="review_item_decide"),
]
