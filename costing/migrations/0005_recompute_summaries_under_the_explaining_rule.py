"""Drop the per-episode cost summaries so that the next report recomputes them.

Which variance record explains a cost line changed: a record about another resource, a
timing departure on a step that is not per day, and an omission on a line used more
than planned no longer explain it (``costing.engine._can_explain``), and extra nights that
no record on the stay explains fall back to a documented delay on another step. Summaries computed
under the old rule would keep causes that are now wrong, and nothing marks them stale
(no episode or rate changed), so they are removed; they are derived data, rebuilt from
episodes, events, variances and rates by the next report run. Report runs already
computed keep their figures, as they always do.
"""

from django.db import migrations


def drop_summaries(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # Immediate and without dead rows to vacuum, however large the tables.
        schema_editor.execute("TRUNCATE costing_episodecostline, costing_episodecost")
    else:
        schema_editor.execute("DELETE FROM costing_episodecostline")
        schema_editor.execute("DELETE FROM costing_episodecost")


class Migration(migrations.Migration):
    dependencies = [
        ("costing", "0004_cause_label_no_cause_recorded"),
    ]

    # Nothing to restore going back: the summaries are rebuilt by the next report either way.
    operations = [migrations.RunPython(drop_summaries, migrations.RunPython.noop)]
