"""Drop the per-episode cost summaries so that the next report recomputes them.

Which variance record explains a cost line changed: a record about another resource, a
timing departure on a step that is not per day, and an omission on a line used more
than planned no longer explain it (``costing.engine._can_explain``), and extra nights that
no record on the stay explains fall back to the episode's first delay. Summaries computed
under the old rule would keep causes that are now wrong, and nothing marks them stale
(no episode or rate changed), so they are removed; they are derived data, rebuilt from
episodes, events, variances and rates by the next report run. Report runs already
computed keep their figures, as they always do.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("costing", "0004_cause_label_no_cause_recorded"),
    ]

    operations = [
        migrations.RunSQL(
            sql=["DELETE FROM costing_episodecostline", "DELETE FROM costing_episodecost"],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
