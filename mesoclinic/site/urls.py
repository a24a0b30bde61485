from django.urls import path

from mesoclinic.site import views

app_name = "site"
urlpatterns = [
    path("<slug:slug>/", views.home, name="home"),
    path("<slug:slug>/treatments/<slug:key>/", views.protocol, name="protocol"),
    path("<slug:slug>/products/", views.products, name="products"),
    path("<slug:slug>/practitioners/", views.practitioners, name="practitioners"),
    path("<slug:slug>/gallery/", views.gallery, name="gallery"),
    path("<slug:slug>/gallery/<int:photo_id>/", views.gallery_image, name="gallery_image"),
    path("<slug:slug>/questions/", views.questions, name="questions"),
    path("<slug:slug>/book/", views.book, name="book"),
    path("<slug:slug>/book/done/<str:token>/", views.booked, name="booked"),
    path("<slug:slug>/sitemap.xml", views.sitemap, name="sitemap"),
    path("<slug:slug>/brand.css", views.brand_css, name="brand_css"),
]
