"""Writes to pathways: create, draft, edit a draft, publish, retire.

Every function is keyword-only, runs in one transaction, validates with
``full_clean`` and records who/when/why twice: a ``PathwayChange`` (the pathway's
own history, shown on its page) and an ``audit_record`` (the trust-wide,
hash-chained trail).

Only drafts can be edited. Published and retired versions are frozen; the rule
is also held by the admin (read-only) and by database triggers (migration 0002),
so this module is the friendly refusal, not the only one.

Edits lock the version row (``SELECT ... FOR UPDATE``) so that an edit cannot
interleave with a publish of the same draft; drafting and publishing lock the
pathway row so that two leads cannot both create version 3 or both publish.
"""

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.audit import audit_record
from accounts.privacy import refuse_patient_identifiers

from .models import Pathway, PathwayChange, PathwayVersion, PlannedResource, Resource, Stage, Step

Status = PathwayVersion.Status

# Bounds on what an author can plan. They catch slips of the keyboard (an extra row of
# nines) that the database would store and the plan would then cost and time, not
# clinical judgement: each is far beyond any real pathway.
MAX_WINDOW_MINUTES = 365 * 1440  # a window reaches at most a year from its anchor
MAX_EXPECTED_COUNT = Decimal("100")  # times a (not per-day) step is done in one episode
MAX_EXPECTED_DAYS = Decimal("365")  # expected days of a per-day step
MAX_QUANTITY = {  # per occurrence of a step, per head, by the resource's unit
    Resource.Unit.MINUTE: Decimal("1440"),  # a whole day of someone's minutes
    Resource.Unit.ITEM: Decimal("1000"),
    Resource.Unit.DAY: Decimal("365"),
}

STEP_FIELDS = (
    "code",
    "name",
    "step_type",
    "mandatory",
    "criticality",
    "evidence",
    "guidance",
    "anchor",
    "window_min_minutes",
    "window_max_minutes",
    "per_day",
    "expected_count",
)


# --- history ---------------------------------------------------------------------------


def _record(
    *, version: PathwayVersion, actor, action: str, note: str = "", detail: dict | None = None, obj=None, at=None
):
    detail = detail or {}
    PathwayChange.objects.create(
        version=version, actor=actor, action=action, note=note, detail=detail, at=at or timezone.now()
    )
    audit_record(
        action=f"pathway.{action}",
        actor=actor,
        obj=obj if obj is not None else version,
        detail={"pathway": version.pathway.code, "version": version.number, "note": note, **detail},
    )


def _frozen_error(version: PathwayVersion) -> ValidationError:
    return ValidationError(
        f"{version.pathway.code} version {version.number} is {version.get_status_display().lower()}: "
        "published and retired versions cannot be changed. Draft a new version to make changes."
    )


def _lock_draft(version: PathwayVersion) -> PathwayVersion:
    """Re-read the version under a row lock and refuse unless it is a draft."""
    locked = PathwayVersion.objects.select_for_update().select_related("pathway").get(pk=version.pk)
    if locked.status != Status.DRAFT:
        raise _frozen_error(locked)
    return locked


def _step_snapshot(step: Step) -> dict:
    return {
        "code": step.code,
        "stage": step.stage.name,
        "name": step.name,
        "type": step.step_type,
        "mandatory": step.mandatory,
        "criticality": step.criticality,
        "anchor": step.anchor.code if step.anchor_id else None,
        "window": [step.window_min_minutes, step.window_max_minutes],
        "per_day": step.per_day,
        "expected_count": str(step.expected_count),
    }


# --- pathways and versions ---------------------------------------------------------------


@transaction.atomic
def pathway_create(
    *,
    code: str,
    name: str,
    owner_unit,
    actor,
    specialty: str = "",
    description: str = "",
    note: str = "",
) -> Pathway:
    """A new pathway with an empty draft version 1."""
    refuse_patient_identifiers(note=note)
    pathway = Pathway(
        code=code.strip().upper(), name=name, specialty=specialty, owner_unit=owner_unit, description=description
    )
    taken = Pathway.objects.filter(code=pathway.code).first()
    if taken is not None:
        # Name the pathway that has the code: the lead may be about to duplicate it.
        raise ValidationError({"code": f"There is already a pathway {taken.code} ({taken.name}): choose another code."})
    pathway.full_clean()
    pathway.save()
    version = PathwayVersion(pathway=pathway, number=1, created_by=actor, change_note=note)
    version.full_clean(exclude=["created_by"])
    version.save()
    _record(version=version, actor=actor, action="create", note=note or "Pathway created", obj=pathway)
    return pathway


@transaction.atomic
def pathway_update(
    *, pathway: Pathway, actor, name: str, specialty: str = "", description: str = "", owner_unit=None
) -> Pathway:
    """Edit what the pathway is called and who owns it; the plan itself lives in versions."""
    pathway = Pathway.objects.select_for_update().get(pk=pathway.pk)
    before = {"name": pathway.name, "specialty": pathway.specialty, "owner_unit": pathway.owner_unit_id}
    pathway.name, pathway.specialty, pathway.description = name, specialty, description
    if owner_unit is not None:
        pathway.owner_unit = owner_unit
    pathway.full_clean()
    pathway.save()
    latest = pathway.versions.order_by("-number").first()
    after = {"name": pathway.name, "specialty": pathway.specialty, "owner_unit": pathway.owner_unit_id}
    _record(
        version=latest, actor=actor, action="pathway_update", detail={"before": before, "after": after}, obj=pathway
    )
    return pathway


def current_version(pathway: Pathway) -> PathwayVersion | None:
    """The published version, else the newest one."""
    versions = list(pathway.versions.order_by("-number"))
    for version in versions:
        if version.status == Status.PUBLISHED:
            return version
    return versions[0] if versions else None


@transaction.atomic
def pathway_version_draft(*, pathway: Pathway, actor, note: str = "") -> PathwayVersion:
    """A new draft copied from the current version: stages, steps, anchors, must-follow and planned resources.

    One draft at a time: a second would fork the plan and the later publish
    would silently drop the other's work.
    """
    refuse_patient_identifiers(note=note)
    pathway = Pathway.objects.select_for_update().get(pk=pathway.pk)
    existing = pathway.versions.filter(status=Status.DRAFT).first()
    if existing is not None:
        raise ValidationError(
            f"{pathway.code} already has a draft (version {existing.number}). Edit or publish it first."
        )
    source = current_version(pathway)
    number = (pathway.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    draft = PathwayVersion(pathway=pathway, number=number, created_by=actor, change_note=note)
    draft.full_clean(exclude=["created_by"])
    draft.save()
    if source is not None:
        _copy_content(source, draft)
    _record(
        version=draft,
        actor=actor,
        action="draft",
        note=note,
        detail={"copied_from": source.number if source else None},
    )
    return draft


def _copy_content(source: PathwayVersion, target: PathwayVersion) -> None:
    stages = list(source.stages.order_by("order", "id"))
    new_stages = Stage.objects.bulk_create(Stage(version=target, order=s.order, name=s.name) for s in stages)
    stage_map = {old.pk: new.pk for old, new in zip(stages, new_stages, strict=True)}

    steps = list(source.steps.order_by("id"))
    new_steps = Step.objects.bulk_create(
        Step(
            version=target,
            stage_id=stage_map[s.stage_id],
            **{f: getattr(s, f) for f in STEP_FIELDS if f != "anchor"},
            order=s.order,
        )
        for s in steps
    )
    step_map = {old.pk: new for old, new in zip(steps, new_steps, strict=True)}
    # Anchors point at steps of the same version, which only exist now.
    anchored = []
    for old in steps:
        if old.anchor_id:
            new = step_map[old.pk]
            new.anchor_id = step_map[old.anchor_id].pk
            anchored.append(new)
    Step.objects.bulk_update(anchored, ["anchor"])

    through = Step.must_follow.through
    links = through.objects.filter(from_step__version=source)
    through.objects.bulk_create(
        through(from_step_id=step_map[link.from_step_id].pk, to_step_id=step_map[link.to_step_id].pk) for link in links
    )
    PlannedResource.objects.bulk_create(
        PlannedResource(
            step_id=step_map[p.step_id].pk, resource_id=p.resource_id, quantity=p.quantity, headcount=p.headcount
        )
        for p in PlannedResource.objects.filter(step__version=source).order_by("id")
    )


def _window_inverted(step: Step) -> bool:
    low, high = step.window_min_minutes, step.window_max_minutes
    return low is not None and high is not None and low > high


@dataclass(frozen=True)
class Problem:
    """One reason a version cannot be published, tied to a step where it can be."""

    message: str
    step_code: str = ""


def version_problems(version: PathwayVersion) -> list[Problem]:
    """Everything that stops ``version`` from being published; empty when it can be."""
    steps = list(version.steps.all())
    if not steps:
        return [Problem("A pathway needs at least one step before it can be published.")]
    problems: list[Problem] = []
    by_id = {s.pk: s for s in steps}

    for step in steps:
        if step.anchor_id is not None and step.anchor_id not in by_id:
            problems.append(Problem(f"{step.code}: its timing anchor is a step of another version.", step.code))
        if _window_inverted(step):
            problems.append(Problem(f"{step.code}: the window closes before it opens.", step.code))
        # The editing forms refuse these; the admin and imports do not go through them.
        for message in _check_step_values(step).values():
            problems.append(Problem(f"{step.code}: {message}", step.code))
    planned = PlannedResource.objects.filter(step__version=version).select_related("step", "resource")
    for item in planned.order_by("step__code", "resource__code"):
        message = _planned_value_error(item)
        if message:
            problems.append(Problem(f"{item.step.code}, {item.resource.name}: {message}", item.step.code))
    # Anchor chains must end at the episode start; a loop has no start to count from.
    for step in steps:
        seen = set()
        current = step
        while current is not None and current.anchor_id is not None:
            if current.pk in seen:
                problems.append(
                    Problem(
                        f"{step.code}: its timing anchors go round in a circle and never reach the episode start.",
                        step.code,
                    )
                )
                break
            seen.add(current.pk)
            current = by_id.get(current.anchor_id)

    through = Step.must_follow.through
    edges: dict[int, set[int]] = {}
    for from_id, to_id in through.objects.filter(from_step__version=version).values_list("from_step_id", "to_step_id"):
        if to_id not in by_id:
            problems.append(
                Problem(f"{by_id[from_id].code}: it must follow a step of another version.", by_id[from_id].code)
            )
            continue
        edges.setdefault(from_id, set()).add(to_id)
    cycle = _find_cycle(edges)
    if cycle:
        codes = " -> ".join(by_id[i].code for i in cycle)
        problems.append(Problem(f"The 'must follow' order goes round in a circle: {codes}.", by_id[cycle[0]].code))
    return problems


def _find_cycle(edges: dict[int, set[int]]) -> list[int]:
    """A cycle in a directed graph as a list of nodes (first repeated at the end), or []."""
    white, grey, black = 0, 1, 2
    colour: dict[int, int] = {}
    path: list[int] = []

    def visit(node: int) -> list[int]:
        colour[node] = grey
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            state = colour.get(nxt, white)
            if state == grey:
                return path[path.index(nxt) :] + [nxt]
            if state == white:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        colour[node] = black
        return []

    for node in sorted(edges):
        if colour.get(node, white) == white:
            found = visit(node)
            if found:
                return found
    return []


@transaction.atomic
def pathway_version_publish(
    *, version: PathwayVersion, actor, note: str, effective_from: date | None = None, agreed_at: datetime | None = None
) -> PathwayVersion:
    """Freeze a draft and make it the pathway's version; the version it replaces is retired in the same transaction.

    Episodes already started keep the version they started on (they point at it). ``agreed_at`` is for
    loading a pathway's past (the demo's versions, agreed months ago): it dates the publication, the
    retirement of the version replaced and their history rows; the audit trail still records when it
    was loaded. Pages and the API never pass it.
    """
    Pathway.objects.select_for_update().get(pk=version.pathway_id)
    version = _lock_draft(version)
    if not note.strip():
        raise ValidationError(
            {"note": "Say what changed and why: the change note is shown to everyone who uses the pathway."}
        )
    refuse_patient_identifiers(note=note)
    problems = version_problems(version)
    if problems:
        raise ValidationError([p.message for p in problems])
    now = timezone.now()
    if agreed_at is not None:
        if agreed_at > now:
            raise ValidationError({"agreed_at": "A version cannot have been agreed in the future."})
        now = agreed_at
    previous = PathwayVersion.objects.filter(pathway_id=version.pathway_id, status=Status.PUBLISHED).first()
    if previous is not None:
        previous.status = Status.RETIRED
        previous.retired_at = now
        previous.save(update_fields=["status", "retired_at"])
        _record(
            version=previous,
            actor=actor,
            action="retire",
            note=f"Replaced by version {version.number}",
            detail={"replaced_by": version.number},
            at=now,
        )
    version.status = Status.PUBLISHED
    version.published_at = now
    version.published_by = actor
    version.change_note = note
    version.effective_from = effective_from or timezone.localdate()
    version.full_clean(exclude=["created_by"])
    version.save()
    _record(
        version=version,
        actor=actor,
        action="publish",
        note=note,
        detail={"replaces": previous.number if previous else None, "steps": version.steps.count()},
        at=now,
    )
    return version


@transaction.atomic
def pathway_version_retire(*, version: PathwayVersion, actor, note: str) -> PathwayVersion:
    """Withdraw a published version without a successor: no new episode can start on the pathway."""
    version = PathwayVersion.objects.select_for_update().select_related("pathway").get(pk=version.pk)
    if version.status != Status.PUBLISHED:
        raise ValidationError(f"Only a published version can be retired; version {version.number} is {version.status}.")
    if not note.strip():
        raise ValidationError({"note": "Say why the pathway is being retired."})
    refuse_patient_identifiers(note=note)
    version.status = Status.RETIRED
    version.retired_at = timezone.now()
    version.save(update_fields=["status", "retired_at"])
    _record(version=version, actor=actor, action="retire", note=note)
    return version


# --- stages ------------------------------------------------------------------------------


@transaction.atomic
def stage_add(*, version: PathwayVersion, name: str, actor) -> Stage:
    version = _lock_draft(version)
    order = (version.stages.aggregate(n=Max("order"))["n"] or 0) + 1
    stage = Stage(version=version, name=name.strip(), order=order)
    stage.full_clean()
    stage.save()
    _record(version=version, actor=actor, action="stage_add", detail={"stage": stage.name}, obj=stage)
    return stage


@transaction.atomic
def stage_update(*, stage: Stage, name: str, actor) -> Stage:
    version = _lock_draft(stage.version)
    stage = Stage.objects.get(pk=stage.pk)
    before = stage.name
    stage.name = name.strip()
    stage.full_clean()
    stage.save()
    _record(
        version=version, actor=actor, action="stage_update", detail={"before": before, "after": stage.name}, obj=stage
    )
    return stage


@transaction.atomic
def stage_move(*, stage: Stage, offset: int, actor) -> Stage:
    """Move a stage ``offset`` places (-1 up, +1 down) and renumber the version's stages 1..n."""
    version = _lock_draft(stage.version)
    stages = list(version.stages.order_by("order", "id"))
    ids = [s.pk for s in stages]
    index = ids.index(stage.pk)
    target = max(0, min(len(ids) - 1, index + offset))
    ids.insert(target, ids.pop(index))
    _renumber(stages, ids)
    _record(
        version=version,
        actor=actor,
        action="stage_reorder",
        detail={"order": [s.name for s in sorted(stages, key=lambda s: s.order)]},
        obj=stage,
    )
    return Stage.objects.get(pk=stage.pk)


@transaction.atomic
def stage_remove(*, stage: Stage, actor) -> None:
    """Remove an empty stage; its steps must be moved or removed first, so nothing goes by accident."""
    version = _lock_draft(stage.version)
    if stage.steps.exists():
        raise ValidationError(f"The stage '{stage.name}' still has steps. Move or remove them first.")
    name = stage.name
    stage.delete()
    _renumber(list(version.stages.order_by("order", "id")))
    _record(version=version, actor=actor, action="stage_remove", detail={"stage": name})


def _renumber(items: list, ids: list[int] | None = None) -> None:
    """Give ``items`` orders 1..n following ``ids`` (or their current order); write only those that change."""
    by_id = {item.pk: item for item in items}
    changed = []
    for position, pk in enumerate(ids or [i.pk for i in items], start=1):
        item = by_id[pk]
        if item.order != position:
            item.order = position
            changed.append(item)
    if changed:
        type(items[0]).objects.bulk_update(changed, ["order"])


# --- steps -------------------------------------------------------------------------------


def _check_step_links(step: Step, version: PathwayVersion, must_follow) -> dict:
    errors = {}
    if step.stage_id and step.stage.version_id != version.pk:
        errors["stage"] = "Choose a stage of this version."
    if step.anchor_id:
        if step.anchor.version_id != version.pk:
            errors["anchor"] = "The anchor must be a step of this version."
        elif step.pk and step.anchor_id == step.pk:
            errors["anchor"] = "A step cannot be timed from itself."
    if _window_inverted(step):
        errors["window_max_minutes"] = "The latest time must not be before the earliest time."
    for other in must_follow or ():
        if other.version_id != version.pk:
            errors["must_follow"] = "Steps to follow must belong to this version."
        elif step.pk and other.pk == step.pk:
            errors["must_follow"] = "A step cannot follow itself."
    return errors


def _check_step_values(step: Step) -> dict:
    """Timing and counts a plan can meet: within bounds, and never due before the episode starts."""
    errors = {}
    for name in ("window_min_minutes", "window_max_minutes"):
        value = getattr(step, name)
        if isinstance(value, int) and abs(value) > MAX_WINDOW_MINUTES:
            errors[name] = f"Keep within 365 days ({MAX_WINDOW_MINUTES:,} minutes) of the anchor."
        elif isinstance(value, int) and value < 0 and step.anchor_id is None:
            # Nothing can be recorded before the episode starts, so such a window is never met.
            errors[name] = (
                "A step timed from the episode start cannot be due before the episode starts: "
                "use 0 or more, or time it from another step."
            )
    count = step.expected_count
    if isinstance(count, Decimal):
        if step.per_day and count > MAX_EXPECTED_DAYS:
            errors["expected_count"] = f"A per-day step is expected for at most {MAX_EXPECTED_DAYS} days."
        elif not step.per_day and count > MAX_EXPECTED_COUNT:
            errors["expected_count"] = (
                f"At most {MAX_EXPECTED_COUNT} times in one episode; for a step repeated each day, tick Per day."
            )
        elif step.mandatory and count < 1:
            errors["expected_count"] = (
                "A mandatory step is expected at least once: set 1 or more, or untick Mandatory for a conditional step."
            )
    return errors


def _follow_cycle(step: Step, must_follow) -> list[str]:
    """The codes of the circle that ``step`` must-following ``must_follow`` would close, or [].

    There is a circle when the step is reachable from one of the steps it is to follow,
    through the version's other must-follow links (its own current links are being replaced).
    """
    if not step.pk or not must_follow:
        return []
    through = Step.must_follow.through
    edges: dict[int, list[int]] = {}
    links = through.objects.filter(from_step__version_id=step.version_id).exclude(from_step_id=step.pk)
    for from_id, to_id in links.values_list("from_step_id", "to_step_id"):
        edges.setdefault(from_id, []).append(to_id)
    came_from: dict[int, int | None] = {}
    queue = deque()
    for other in sorted(must_follow, key=lambda s: s.code):
        if other.pk != step.pk and other.pk not in came_from:
            came_from[other.pk] = None
            queue.append(other.pk)
    while queue:
        node = queue.popleft()
        if node == step.pk:
            path = []
            while node is not None:
                path.append(node)
                node = came_from[node]
            ids = [step.pk, *reversed(path)]
            codes = dict(Step.objects.filter(pk__in=ids).values_list("pk", "code"))
            codes[step.pk] = step.code
            return [codes[i] for i in ids]
        for nxt in edges.get(node, ()):
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return []


def _validate_step(step: Step, version: PathwayVersion, must_follow) -> None:
    errors = _check_step_links(step, version, must_follow)
    for key, message in _check_step_values(step).items():
        errors.setdefault(key, message)
    if "must_follow" not in errors:
        cycle = _follow_cycle(step, must_follow)
        if cycle:
            errors["must_follow"] = (
                f"That would make the 'must follow' order go round in a circle: {' -> '.join(cycle)}. "
                "Untick the step that has to come later."
            )
    try:
        step.full_clean(exclude=list(errors))
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, messages)
    if errors:
        if "__all__" in errors:
            errors["__all__"] = [_friendly(m) for m in errors["__all__"]]
        raise ValidationError(errors)


def _friendly(message: str) -> str:
    if "step_unique_code_per_version" in message or ("Version" in message and "Code" in message):
        return "Another step of this version already has this code."
    if "step_window_min_le_max" in message:
        return "The latest time must not be before the earliest time."
    return message


@transaction.atomic
def step_add(*, stage: Stage, actor, must_follow=(), **fields) -> Step:
    """Add a step at the end of ``stage``. ``fields``: any of ``STEP_FIELDS``."""
    version = _lock_draft(stage.version)
    unknown = set(fields) - set(STEP_FIELDS)
    if unknown:
        raise TypeError(f"unknown step fields: {sorted(unknown)}")
    if "code" in fields:
        fields["code"] = fields["code"].strip().upper()
    order = (stage.steps.aggregate(n=Max("order"))["n"] or 0) + 1
    step = Step(version=version, stage=stage, order=order, **fields)
    if step.expected_count is None:
        step.expected_count = Decimal("1")
    must_follow = list(must_follow or ())
    _validate_step(step, version, must_follow)
    step.save()
    step.must_follow.set(must_follow)
    _record(
        version=version,
        actor=actor,
        action="step_add",
        detail={"step": _step_snapshot(step), "must_follow": sorted(s.code for s in must_follow)},
        obj=step,
    )
    return step


@transaction.atomic
def step_update(*, step: Step, actor, must_follow=None, **fields) -> Step:
    """Change a step's fields (and, when given, its must-follow list)."""
    version = _lock_draft(step.version)
    unknown = set(fields) - set(STEP_FIELDS) - {"stage"}
    if unknown:
        raise TypeError(f"unknown step fields: {sorted(unknown)}")
    step = Step.objects.select_related("anchor").get(pk=step.pk)
    before = _step_snapshot(step)
    before_follow = sorted(step.must_follow.values_list("code", flat=True))
    if "code" in fields:
        fields["code"] = fields["code"].strip().upper()
    moved = "stage" in fields and fields["stage"].pk != step.stage_id
    if moved and fields["stage"].version_id != step.version_id:
        raise ValidationError({"stage": "Choose a stage of this version: a step moves within its own version."})
    for key, value in fields.items():
        setattr(step, key, value)
    if moved:  # to the end of its new stage
        step.order = (fields["stage"].steps.aggregate(n=Max("order"))["n"] or 0) + 1
    must_follow = list(must_follow) if must_follow is not None else None
    _validate_step(step, version, must_follow)
    if step.anchor_id and _anchor_loops(step):
        raise ValidationError({"anchor": "That anchor would time this step from itself, through other steps."})
    step.save()
    if must_follow is not None:
        step.must_follow.set(must_follow)
    after = _step_snapshot(step)
    after_follow = sorted(step.must_follow.values_list("code", flat=True))
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if before_follow != after_follow:
        changes["must_follow"] = [before_follow, after_follow]
    _record(
        version=version, actor=actor, action="step_update", detail={"step": step.code, "changes": changes}, obj=step
    )
    return step


def _anchor_loops(step: Step) -> bool:
    anchors = dict(Step.objects.filter(version_id=step.version_id).values_list("pk", "anchor_id"))
    anchors[step.pk] = step.anchor_id
    seen = {step.pk}
    current = step.anchor_id
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = anchors.get(current)
    return False


@transaction.atomic
def step_move(*, step: Step, offset: int, actor) -> Step:
    """Move a step ``offset`` places within its stage (-1 up, +1 down)."""
    version = _lock_draft(step.version)
    siblings = list(Step.objects.filter(stage_id=step.stage_id).order_by("order", "id"))
    ids = [s.pk for s in siblings]
    index = ids.index(step.pk)
    target = max(0, min(len(ids) - 1, index + offset))
    ids.insert(target, ids.pop(index))
    _renumber(siblings, ids)
    _record(
        version=version,
        actor=actor,
        action="step_reorder",
        detail={"step": step.code, "order": [by.code for by in sorted(siblings, key=lambda s: s.order)]},
        obj=step,
    )
    return Step.objects.get(pk=step.pk)


@transaction.atomic
def step_remove(*, step: Step, actor) -> None:
    version = _lock_draft(step.version)
    dependants = list(step.anchored_steps.values_list("code", flat=True))
    if dependants:
        raise ValidationError(
            f"{step.code} is the timing anchor of {', '.join(sorted(dependants))}. Change their anchor first."
        )
    snapshot = _step_snapshot(step)
    stage = step.stage
    step.delete()
    _renumber(list(stage.steps.order_by("order", "id")))
    _record(version=version, actor=actor, action="step_remove", detail={"step": snapshot})


# --- planned resources ---------------------------------------------------------------------


def _planned_detail(planned: PlannedResource) -> dict:
    return {
        "step": planned.step.code,
        "resource": planned.resource.code,
        "quantity": str(planned.quantity),
        "headcount": planned.headcount,
    }


def _planned_value_error(planned: PlannedResource) -> str:
    """Why a planned quantity is beyond any real step, or ""."""
    limit = MAX_QUANTITY.get(planned.resource.unit)
    if limit is None or not isinstance(planned.quantity, Decimal) or planned.quantity <= limit:
        return ""
    if planned.resource.unit == Resource.Unit.MINUTE:
        return f"At most {limit:,} minutes (a day) per person for one occurrence; for a longer stay, make the step per day."
    return f"At most {limit:,} {planned.resource.get_unit_display()}s for one occurrence of the step."


def _validate_planned(planned: PlannedResource) -> None:
    errors = {}
    try:
        planned.full_clean()
    except ValidationError as exc:
        errors = exc.message_dict
        if "__all__" in errors:
            errors["resource"] = ["This step already uses this resource; change its quantity instead."]
            errors.pop("__all__")
    if "quantity" not in errors and planned.resource_id:
        message = _planned_value_error(planned)
        if message:
            errors["quantity"] = [message]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def planned_resource_add(
    *, step: Step, resource: Resource, quantity: Decimal, actor, headcount: int = 1
) -> PlannedResource:
    version = _lock_draft(step.version)
    planned = PlannedResource(step=step, resource=resource, quantity=quantity, headcount=headcount)
    _validate_planned(planned)
    planned.save()
    _record(version=version, actor=actor, action="resource_add", detail=_planned_detail(planned), obj=planned)
    return planned


@transaction.atomic
def planned_resource_update(
    *, planned: PlannedResource, actor, quantity: Decimal, headcount: int = 1, resource: Resource | None = None
) -> PlannedResource:
    version = _lock_draft(planned.step.version)
    planned = PlannedResource.objects.select_related("step", "resource").get(pk=planned.pk)
    before = _planned_detail(planned)
    planned.quantity, planned.headcount = quantity, headcount
    if resource is not None:
        planned.resource = resource
    _validate_planned(planned)
    planned.save()
    _record(
        version=version,
        actor=actor,
        action="resource_update",
        detail={"before": before, "after": _planned_detail(planned)},
        obj=planned,
    )
    return planned


@transaction.atomic
def planned_resource_remove(*, planned: PlannedResource, actor) -> None:
    version = _lock_draft(planned.step.version)
    detail = _planned_detail(planned)
    planned.delete()
    _record(version=version, actor=actor, action="resource_remove", detail=detail)


# --- resources (the vocabulary steps are planned in; finance maintains it) -------------------


@transaction.atomic
def resource_create(
    *, code: str, name: str, kind: str, unit: str, actor, salaried: bool = False, description: str = ""
) -> Resource:
    resource = Resource(
        code=code.strip().upper(), name=name, kind=kind, unit=unit, salaried=salaried, description=description
    )
    resource.full_clean()
    resource.save()
    audit_record(action="resource.create", actor=actor, obj=resource, detail={"code": resource.code, "name": name})
    return resource


def resource_unit_check(*, resource: Resource, unit: str) -> None:
    """A resource's unit is fixed once a plan uses it: quantities are in that unit.

    Raises ``ValidationError`` on ``unit``. ``resource_update`` checks it, and so does the
    admin's form, which must refuse before it saves.
    """
    if resource.pk is not None and unit != resource.unit and resource.planned_uses.exists():
        raise ValidationError(
            {"unit": "Pathway steps plan this resource in its current unit; create a new resource instead."}
        )


@transaction.atomic
def resource_update(
    *, resource: Resource, actor, name: str, kind: str, unit: str, salaried: bool = False, description: str = ""
) -> Resource:
    """Rename or re-describe a resource. Its unit is fixed once a plan uses it (``resource_unit_check``)."""
    resource = Resource.objects.select_for_update().get(pk=resource.pk)
    resource_unit_check(resource=resource, unit=unit)
    before = {"name": resource.name, "kind": resource.kind, "unit": resource.unit, "salaried": resource.salaried}
    resource.name, resource.kind, resource.unit = name, kind, unit
    resource.salaried, resource.description = salaried, description
    if (kind, unit, salaried) != (before["kind"], before["unit"], before["salaried"]):
        # Stored cost summaries of the episodes that used it are recomputed (costing.summaries.stale):
        # whether its time is capacity or cash is part of each one's figures.
        resource.costing_changed_at = timezone.now()
    resource.full_clean()
    resource.save()
    after = {"name": resource.name, "kind": resource.kind, "unit": resource.unit, "salaried": resource.salaried}
    audit_record(action="resource.update", actor=actor, obj=resource, detail={"before": before, "after": after})
    return resource


def pathway_change_note_for_admin(*, version: PathwayVersion, actor, action: str, detail: dict) -> None:
    """History for edits made to a draft through the Django admin."""
    _record(version=version, actor=actor, action=action, note="Edited in the admin", detail=detail)
