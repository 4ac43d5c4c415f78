from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo content and synthetic data: the top layer, free to use every app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
