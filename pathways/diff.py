"""What changed between two versions of a pathway, step by step.

Steps are matched by their stable ``code``. The expected cost delta is costing's
figure (``costing.standard.version_cost_delta``) and is shown beside this diff as
a fragment served by costing, so this module stays free of money.
"""

from dataclasses import dataclass, field

from django.db.models import Prefetch

from .models import PathwayVersion, PlannedResource, Step
from .templatetags.pathways import anchor_label, window_label


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: str
    after: str
    timing: bool = False


@dataclass(frozen=True)
class ResourceChange:
    resource: str
    before: str  # "" when added
    after: str  # "" when removed


@dataclass
class StepChange:
    code: str
    name: str
    fields: list[FieldChange] = field(default_factory=list)
    resources: list[ResourceChange] = field(default_factory=list)

    @property
    def timing_changed(self) -> bool:
        return any(change.timing for change in self.fields)


@dataclass
class VersionDiff:
    old: PathwayVersion
    new: PathwayVersion
    added: list[Step]
    removed: list[Step]
    changed: list[StepChange]
    stages_added: list[str]
    stages_removed: list[str]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.stages_added or self.stages_removed)


def _load(version: PathwayVersion) -> dict[str, Step]:
    steps = (
        Step.objects.filter(version=version)
        .select_related("stage", "anchor")
        .prefetch_related(
            "must_follow",
            Prefetch("planned_resources", queryset=PlannedResource.objects.select_related("resource")),
        )
        .order_by("stage__order", "order", "id")
    )
    return {step.code: step for step in steps}


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _describe(step: Step) -> list[tuple[str, str, bool]]:
    """(label, shown value, is timing) for each compared attribute."""
    return [
        ("Name", step.name, False),
        ("Stage", step.stage.name, False),
        ("Type", step.get_step_type_display(), False),
        ("Mandatory", _yes_no(step.mandatory), False),
        ("Criticality", str(step.criticality), False),
        ("Evidence", step.evidence, False),
        ("Guidance", step.guidance, False),
        ("Timed from", anchor_label(step), True),
        ("Window", window_label(step), True),
        ("Must follow", ", ".join(sorted(s.code for s in step.must_follow.all())) or "nothing", True),
        ("Per day", _yes_no(step.per_day), False),
        ("Expected count", f"{step.expected_count.normalize():f}", False),
    ]


def _planned(step: Step) -> dict[str, str]:
    shown = {}
    for planned in step.planned_resources.all():
        unit = planned.resource.get_unit_display()
        # "1 minute", "90 minutes", "0.5 days": as the plan shows it (the pluralize filter).
        quantity = f"{planned.quantity.normalize():f} {unit}{'' if planned.quantity == 1 else 's'}"
        shown[planned.resource.code] = f"{planned.headcount} x {quantity}" if planned.headcount != 1 else quantity
    return shown


def version_diff(old: PathwayVersion, new: PathwayVersion) -> VersionDiff:
    before, after = _load(old), _load(new)
    changed = []
    for code, step in after.items():
        if code not in before:
            continue
        previous = before[code]
        change = StepChange(code=code, name=step.name)
        for (label, was, timing), (_, now, _) in zip(_describe(previous), _describe(step), strict=True):
            if was != now:
                change.fields.append(FieldChange(label=label, before=was, after=now, timing=timing))
        was_planned, now_planned = _planned(previous), _planned(step)
        for resource in sorted(set(was_planned) | set(now_planned)):
            if was_planned.get(resource) != now_planned.get(resource):
                change.resources.append(
                    ResourceChange(
                        resource=resource, before=was_planned.get(resource, ""), after=now_planned.get(resource, "")
                    )
                )
        if change.fields or change.resources:
            changed.append(change)
    old_stages = list(old.stages.values_list("name", flat=True))
    new_stages = list(new.stages.values_list("name", flat=True))
    return VersionDiff(
        old=old,
        new=new,
        added=[step for code, step in after.items() if code not in before],
        removed=[step for code, step in before.items() if code not in after],
        changed=changed,
        stages_added=[name for name in new_stages if name not in old_stages],
        stages_removed=[name for name in old_stages if name not in new_stages],
    )
