"""The review queue leaves out the variances whose current revision the lead wrote (bench/pages.py).

One index on (changed_by, variance, number) answers that from the index alone for a
whole queue; it replaces the single-column index of ``changed_by``, which it leads
with, so a revision still costs the same index writes. Only the old index is
dropped: altering the field through Django would also drop and re-check the
foreign key over every revision.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_INDEX = "variances_variancerevision_changed_by_id_278067d6"


class Migration(migrations.Migration):
    dependencies = [
        ("variances", "0006_list_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="variancerevision",
            index=models.Index(fields=["changed_by", "variance", "number"], name="revision_author_idx"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="variancerevision",
                    name="changed_by",
                    field=models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{OLD_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{OLD_INDEX}" ON "variances_variancerevision" ("changed_by_id")',
                ),
            ],
        ),
    ]
