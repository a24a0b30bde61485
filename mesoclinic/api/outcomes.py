"""The outcomes endpoints, registered on the NinjaAPI of views.py by ApiConfig.ready."""
