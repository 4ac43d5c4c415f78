from django.apps import AppConfig


class VariancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "variances"
