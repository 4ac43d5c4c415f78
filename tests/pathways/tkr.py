"""The elective total knee replacement of DOMAIN.md section 4, built exactly.

``build_tkr(org_unit)`` returns a dict; its keys are stable (other tests use them):

- ``"pathway"``: the ``Pathway`` (code ``TKR``); ``"version"``: its ``PathwayVersion`` 1
  (published unless ``publish=False``)
- ``"stages"``: ``{"PRE-OP": Stage, "THEATRE": Stage, "WARD": Stage}``
- steps by code: ``"PREOP"`` (pre-op assessment, cost 49.125), ``"SURGERY"`` (3,017.75),
  ``"WARD-STAY"`` (per day, 348.00 x 3 expected days = 1,044.00),
  ``"PHYSIO"`` (28.125 x 2 expected sessions = 56.25)
- resources by code: ``"CONSULTANT"`` 1.875/min, ``"THEATRE-NURSE"`` 0.80/min,
  ``"WARD-NURSE"`` 0.70/min, ``"PHYSIOTHERAPIST"`` 0.625/min, ``"THEATRE"`` (room + kit)
  4.50/min, ``"BED-DAY"`` 180/day, ``"IMPLANT"`` 2,000/item, ``"CONSUMABLES"`` 300/item
- ``"rates"``: ``{resource code: CostRate}`` for ``financial_year``

E = 4,167.125 (displayed 4,167.13). Resources are shared (get-or-create by code);
rates for the year are set (created or replaced); the pathway is created and
published through ``pathways.services`` (so its history exists), once per test
database. ``user`` is recorded as the author (may be None).
"""

from decimal import Decimal

from costing.rates import cost_rate_set
from demo.pathways import TKR_RESOURCES, TKR_STAGES, TKR_STEPS
from pathways import services
from pathways.models import Resource

# The spec is the demo's, so the demo's TKR and this fixture cannot drift apart.
RESOURCES = TKR_RESOURCES
STAGES = TKR_STAGES
STEPS = TKR_STEPS


def build_tkr(org_unit, financial_year: int = 2025, publish: bool = True, user=None) -> dict:
    objects: dict = {"stages": {}, "rates": {}}
    for code, name, kind, unit, salaried, rate in RESOURCES:
        resource, _ = Resource.objects.get_or_create(
            code=code, defaults={"name": name, "kind": kind, "unit": unit, "salaried": salaried}
        )
        objects[code] = resource
        objects["rates"][code], _ = cost_rate_set(
            resource=resource,
            financial_year=financial_year,
            rate=Decimal(rate),
            price_year=financial_year,
            source="DOMAIN.md worked example (elective knee replacement)",
        )
    pathway = services.pathway_create(
        code="TKR",
        name="Elective total knee replacement",
        specialty="Orthopaedics",
        owner_unit=org_unit,
        actor=user,
    )
    version = pathway.versions.get(number=1)
    for code, name in STAGES:
        objects["stages"][code] = services.stage_add(version=version, name=name, actor=user)
    for stage, code, name, step_type, per_day, count, planned in STEPS:
        step = services.step_add(
            stage=objects["stages"][stage],
            actor=user,
            code=code,
            name=name,
            step_type=step_type,
            per_day=per_day,
            expected_count=Decimal(count),
        )
        for resource_code, quantity, headcount in planned:
            services.planned_resource_add(
                step=step, resource=objects[resource_code], quantity=Decimal(quantity), headcount=headcount, actor=user
            )
        objects[code] = step
    if publish:
        version = services.pathway_version_publish(version=version, actor=user, note="First version")
    else:
        version.refresh_from_db()
    objects["pathway"] = pathway
    objects["version"] = version
    return objects
