"""Cost summaries record the costing rules they were computed under.

Which variance record explains a cost line changed (``costing.engine._can_explain``
and the stay's fallback to a documented delay): summaries computed under the old rule
would keep causes that are now wrong, and neither their episode nor a rate changed to
mark them stale. Each summary now carries ``rules_version``; the rows already stored
were computed under version 1, so with ``costing.engine.RULES_VERSION`` at 2 they are
stale and the next report recomputes them, a batch at a time, like any stale summary.
A worker still running the old code during an upgrade writes rows without the column,
which take the default, 1, and are recomputed in turn. Report runs already computed
keep their figures, as they always do.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("costing", "0004_cause_label_no_cause_recorded"),
    ]

    operations = [
        migrations.AddField(
            model_name="episodecost",
            name="rules_version",
            field=models.PositiveSmallIntegerField(db_default=1),
        ),
    ]
