"""JSON export and import of one pathway version, for sharing pathways between trusts.

The document holds the plan, not its lifecycle: no ids, statuses, dates or
authors. Steps refer to each other (anchor, must follow) and to resources by
code, so that ``export -> import as a new pathway -> export`` gives the same
document except the pathway code. Rates are not exported: what a resource costs
is local to each trust.

Format (``"format": "commonpath.pathway-version/1"``)::

    {"format": ..., "pathway": {"code", "name", "specialty", "description"},
     "change_note": "...",
     "resources": [{"code", "name", "kind", "unit", "salaried"}],
     "stages": [{"name": "...", "steps": [{"code", "name", "type", "mandatory", "criticality",
        "evidence", "guidance", "anchor": code|null, "window_min_minutes", "window_max_minutes",
        "must_follow": [codes], "per_day", "expected_count": "3.000",
        "resources": [{"resource": code, "quantity": "90.000", "headcount": 1}]}]}]}

An import creates a new pathway with a draft version 1; publishing it goes
through the same validation as any other draft.
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Prefetch

from accounts.audit import audit_record

from .models import PathwayChange, PathwayVersion, PlannedResource, Resource, Stage, Step
from .services import pathway_create, resource_create

FORMAT = "commonpath.pathway-version/1"


def version_export(version: PathwayVersion) -> dict:
    pathway = version.pathway
    steps = list(
        Step.objects.filter(version=version)
        .select_related("anchor")
        .prefetch_related(
            "must_follow",
            Prefetch("planned_resources", queryset=PlannedResource.objects.select_related("resource").order_by("id")),
        )
        .order_by("order", "id")
    )
    resources: dict[str, Resource] = {}
    stages = []
    for stage in version.stages.order_by("order", "id"):
        stage_steps = []
        for step in (s for s in steps if s.stage_id == stage.pk):
            planned = []
            for p in step.planned_resources.all():
                resources[p.resource.code] = p.resource
                planned.append({"resource": p.resource.code, "quantity": str(p.quantity), "headcount": p.headcount})
            stage_steps.append(
                {
                    "code": step.code,
                    "name": step.name,
                    "type": step.step_type,
                    "mandatory": step.mandatory,
                    "criticality": step.criticality,
                    "evidence": step.evidence,
                    "guidance": step.guidance,
                    "anchor": step.anchor.code if step.anchor_id else None,
                    "window_min_minutes": step.window_min_minutes,
                    "window_max_minutes": step.window_max_minutes,
                    "must_follow": sorted(s.code for s in step.must_follow.all()),
                    "per_day": step.per_day,
                    "expected_count": str(step.expected_count),
                    "resources": planned,
                }
            )
        stages.append({"name": stage.name, "steps": stage_steps})
    return {
        "format": FORMAT,
        "pathway": {
            "code": pathway.code,
            "name": pathway.name,
            "specialty": pathway.specialty,
            "description": pathway.description,
        },
        "change_note": version.change_note,
        "resources": [
            {"code": r.code, "name": r.name, "kind": r.kind, "unit": r.unit, "salaried": r.salaried}
            for r in sorted(resources.values(), key=lambda r: r.code)
        ],
        "stages": stages,
    }


def _require(mapping, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValidationError(f"{where}: '{key}' is missing.")
    return mapping[key]


def _decimal(value, where: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValidationError(f"{where}: '{value}' is not a number.") from exc


def _resources(document: dict, actor) -> dict[str, Resource]:
    """Match the document's resources by code; create missing ones; refuse a unit clash."""
    wanted = {r["code"]: r for r in document.get("resources", []) if isinstance(r, dict) and "code" in r}
    existing = {r.code: r for r in Resource.objects.filter(code__in=wanted)}
    found = {}
    for code, spec in wanted.items():
        resource = existing.get(code)
        if resource is None:
            resource = resource_create(
                code=code,
                name=_require(spec, "name", f"resource {code}"),
                kind=_require(spec, "kind", f"resource {code}"),
                unit=_require(spec, "unit", f"resource {code}"),
                salaried=bool(spec.get("salaried", False)),
                actor=actor,
            )
        elif resource.unit != spec.get("unit"):
            raise ValidationError(
                f"Resource {code} is planned in {spec.get('unit')} in the document but in {resource.unit} here."
            )
        found[code] = resource
    return found


@transaction.atomic
def version_import(
    *, document: dict, owner_unit, actor, code: str | None = None, name: str | None = None
) -> PathwayVersion:
    """Create a new pathway (draft version 1) from an exported document. Raises ``ValidationError``."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValidationError(f"This is not a CommonPath pathway document (expected format {FORMAT}).")
    meta = _require(document, "pathway", "document")
    try:
        pathway = pathway_create(
            code=code or _require(meta, "code", "pathway"),
            name=name or _require(meta, "name", "pathway"),
            specialty=meta.get("specialty", ""),
            description=meta.get("description", ""),
            owner_unit=owner_unit,
            actor=actor,
            note=document.get("change_note", ""),
        )
    except ValidationError as exc:
        # The note is the document's change_note, not a field of the import form: say so.
        if hasattr(exc, "error_dict") and "note" in exc.error_dict:
            notes = exc.message_dict.pop("note")
            raise ValidationError(
                {**exc.message_dict, NON_FIELD_ERRORS: [f"The document's change_note: {m}" for m in notes]}
            ) from None
        raise
    version = pathway.versions.get()
    resources = _resources(document, actor)

    created: dict[str, Step] = {}
    links: list[tuple[Step, dict]] = []
    for stage_order, stage_spec in enumerate(_require(document, "stages", "document"), start=1):
        stage = Stage(version=version, order=stage_order, name=_require(stage_spec, "name", f"stage {stage_order}"))
        stage.full_clean()
        stage.save()
        for step_order, spec in enumerate(stage_spec.get("steps", []), start=1):
            where = f"step {spec.get('code', step_order)}"
            step = Step(
                version=version,
                stage=stage,
                order=step_order,
                code=_require(spec, "code", where),
                name=_require(spec, "name", where),
                step_type=spec.get("type", Step.Type.OTHER),
                mandatory=bool(spec.get("mandatory", True)),
                criticality=spec.get("criticality", 1),
                evidence=spec.get("evidence", ""),
                guidance=spec.get("guidance", ""),
                window_min_minutes=spec.get("window_min_minutes"),
                window_max_minutes=spec.get("window_max_minutes"),
                per_day=bool(spec.get("per_day", False)),
                expected_count=_decimal(spec.get("expected_count", "1"), where),
            )
            if step.code in created:
                raise ValidationError(f"{where}: the code appears twice in the document.")
            try:
                step.full_clean(exclude=["anchor", "version"])
            except ValidationError as exc:
                raise ValidationError(f"{where}: {'; '.join(exc.messages)}") from exc
            step.save()
            created[step.code] = step
            links.append((step, spec))

    through = Step.must_follow.through
    follow_rows = []
    anchored = []
    for step, spec in links:
        where = f"step {step.code}"
        anchor = spec.get("anchor")
        if anchor:
            if anchor not in created:
                raise ValidationError(f"{where}: its anchor {anchor} is not a step of the document.")
            step.anchor = created[anchor]
            anchored.append(step)
        for other in spec.get("must_follow", []):
            if other not in created:
                raise ValidationError(f"{where}: it must follow {other}, which is not a step of the document.")
            follow_rows.append(through(from_step_id=step.pk, to_step_id=created[other].pk))
        for item in spec.get("resources", []):
            resource_code = _require(item, "resource", where)
            if resource_code not in resources:
                raise ValidationError(f"{where}: resource {resource_code} is not listed in the document's resources.")
            planned = PlannedResource(
                step=step,
                resource=resources[resource_code],
                quantity=_decimal(_require(item, "quantity", where), where),
                headcount=item.get("headcount", 1),
            )
            try:
                planned.full_clean()
            except ValidationError as exc:
                raise ValidationError(f"{where}, resource {resource_code}: {'; '.join(exc.messages)}") from exc
            planned.save()
    Step.objects.bulk_update(anchored, ["anchor"])
    through.objects.bulk_create(follow_rows)

    detail = {"source_code": meta.get("code"), "steps": len(created)}
    PathwayChange.objects.create(
        version=version, actor=actor, action="import", note="Imported from JSON", detail=detail
    )
    audit_record(action="pathway.import", actor=actor, obj=version, detail={"pathway": pathway.code, **detail})
    return version
