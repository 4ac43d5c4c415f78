"""Resources record when what they are last changed (salaried, unit, kind).

Cost summaries store each line's ``salaried`` and the capacity variance it makes;
changing a resource's salaried flag did not mark them stale, so a report kept the
old figure while an episode's page and the API showed the new one. ``resource_update``
now sets ``costing_changed_at``, and ``costing.summaries.stale`` treats the summaries
of episodes with a line of that resource, computed before it, as stale. Existing rows
start empty (no change recorded); summaries computed before this release are
recomputed anyway under costing rules version 5. A nullable column: on PostgreSQL
adding it changes only the catalogue.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pathways", "0002_immutable_versions"),
    ]

    operations = [
        migrations.AddField(
            model_name="resource",
            name="costing_changed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
