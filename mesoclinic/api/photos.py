"""The photos endpoints, registered on the NinjaAPI of views.py by ApiConfig.ready."""
