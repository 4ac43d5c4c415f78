"""Cost of repeated steps is said apart from "No cause recorded".

A step done more often than planned is recorded but is not a departure (DOMAIN.md
section 3), so no one is asked for a reason and no record explains what the repeat
used. Reports counted that cost under "No cause recorded", beside departures that are
waiting for their reason. It now has a cause of its own, "Repeated steps"
(``EpisodeCost.repeat_variance``, and ``repeat`` on the lines). ``costing.engine.RULES_VERSION``
goes to 3, so the summaries already stored are stale and the next report recomputes
them a batch at a time. The column's database default, 0, keeps rows written by a worker
still on the old code during an upgrade valid; those rows carry rules version 2 and are
recomputed in turn. On PostgreSQL, adding a column with a constant default changes only
the catalogue. Report runs already computed keep their figures.
"""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("costing", "0005_recompute_summaries_under_the_explaining_rule"),
    ]

    operations = [
        migrations.AddField(
            model_name="episodecost",
            name="repeat_variance",
            field=models.DecimalField(db_default=Decimal("0"), decimal_places=12, max_digits=24),
        ),
        migrations.AlterField(
            model_name="episodecostline",
            name="cause",
            field=models.CharField(
                blank=True,
                choices=[
                    ("patient", "Patient"),
                    ("clinician", "Clinician / staff"),
                    ("system", "System"),
                    ("community", "Community"),
                    ("repeat", "Repeated steps"),
                    ("unexplained", "No cause recorded"),
                ],
                max_length=12,
            ),
        ),
    ]
