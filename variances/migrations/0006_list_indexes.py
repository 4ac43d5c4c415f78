"""Indexes for the review queue and the episode lists at a large trust's scale (bench/pages.py)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_audit_check_anchor"),
        ("pathways", "0002_immutable_versions"),
        ("variances", "0005_importjob"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="episode",
            index=models.Index(fields=["status", "-started_at", "-id"], name="episode_status_started_idx"),
        ),
        migrations.AddIndex(
            model_name="variance",
            index=models.Index(
                models.OrderBy(models.F("review_required"), descending=True),
                models.F("documented_at"),
                models.F("id"),
                condition=models.Q(("status", "documented")),
                name="variance_review_queue_idx",
            ),
        ),
    ]
