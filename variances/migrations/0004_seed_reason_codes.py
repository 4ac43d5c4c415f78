"""Seed the base reason catalogue (HL7 CDS Hooks non-adherence reason codes)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from variances.reasons import seed_base_reasons

    seed_base_reasons(apps.get_model("variances", "ReasonCode"))


class Migration(migrations.Migration):
    dependencies = [("variances", "0003_append_only_history")]
    # Codes are retired, never deleted: going backwards leaves them in place.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
