"""Pages for clinical photos and photo consents (see mesoclinic/web/photos.py)."""

from django.urls import path

from mesoclinic.web import photos

urlpatterns = [
    path("patients/<int:patient_id>/photo-consent/", photos.photo_consent, name="photo_consent"),
    path("courses/<int:course_id>/photos/", photos.course_photos, name="course_photos"),
    path("courses/<int:course_id>/photos/compare/", photos.compare, name="compare_photos"),
    path("photos/<int:photo_id>/image", photos.image, name="photo_image"),
    path("photos/marketing/", photos.marketing, name="marketing_photos"),
]
