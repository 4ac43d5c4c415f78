from django.db import transaction

from .models import OrgUnit


@transaction.atomic
def org_unit_create(*, code: str, name: str, kind: str, parent: OrgUnit | None = None) -> OrgUnit:
    unit = OrgUnit(code=code, name=name, kind=kind, parent=parent)
    unit.path = unit.compute_path()
    unit.full_clean()
    unit.save()
    return unit
