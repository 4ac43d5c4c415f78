"""Reads for pathway pages: who may see and author what, and N+1-free loading of a plan.

Published and retired versions are visible to every role: a plan of care is not
private. Drafts are work in progress: clinical leads, admins and finance (who cost
them) see them. Authoring is for clinical leads and admins of the unit that owns
the pathway (or a unit above it).
"""

from django.db.models import Prefetch, Q

from accounts.models import Membership
from accounts.permissions import AUTHOR_ROLES, has_role, unit_ids_for

from .models import Pathway, PathwayChange, PathwayVersion, PlannedResource, Stage, Step

Role = Membership.Role
Status = PathwayVersion.Status
DRAFT_READERS = (Role.CLINICAL_LEAD, Role.ADMIN, Role.FINANCE)


def home_panel(user) -> dict:
    published = Pathway.objects.filter(versions__status=Status.PUBLISHED).distinct().count()
    drafts = visible_versions(user).filter(status=Status.DRAFT).count()
    return {"published_pathways": published, "draft_versions": drafts}


def can_see_drafts(user) -> bool:
    return has_role(user, *DRAFT_READERS)


def author_unit_ids(user) -> list[int]:
    return unit_ids_for(user, *AUTHOR_ROLES)


def can_author(user, pathway: Pathway) -> bool:
    return pathway.owner_unit_id in author_unit_ids(user)


def can_author_any(user) -> bool:
    return has_role(user, *AUTHOR_ROLES)


def visible_versions(user):
    versions = PathwayVersion.objects.all()
    if not can_see_drafts(user):
        versions = versions.exclude(status=Status.DRAFT)
    return versions


def catalogue(user, *, q: str = "", specialty: str = "", status: str = "") -> list[Pathway]:
    """Pathways the user can see, each with ``.shown`` (the version its page opens on),
    ``.published`` and ``.draft`` set. Three queries whatever the number of pathways."""
    versions = visible_versions(user)
    pathways = Pathway.objects.filter(versions__in=versions).select_related("owner_unit")
    if q:
        pathways = pathways.filter(Q(code__icontains=q) | Q(name__icontains=q) | Q(description__icontains=q))
    if specialty:
        pathways = pathways.filter(specialty=specialty)
    if status == Status.PUBLISHED:
        pathways = pathways.filter(versions__status=Status.PUBLISHED)
    elif status == Status.DRAFT and can_see_drafts(user):
        pathways = pathways.filter(versions__status=Status.DRAFT)
    elif status == Status.RETIRED:
        pathways = pathways.filter(versions__status=Status.RETIRED).exclude(versions__status=Status.PUBLISHED)
    pathways = pathways.distinct().prefetch_related(
        Prefetch("versions", queryset=versions.order_by("-number"), to_attr="visible")
    )
    result = []
    for pathway in pathways.order_by("code"):
        annotate_versions(pathway, pathway.visible)
        result.append(pathway)
    return result


def annotate_versions(pathway: Pathway, versions: list[PathwayVersion]) -> None:
    pathway.published = next((v for v in versions if v.status == Status.PUBLISHED), None)
    pathway.draft = next((v for v in versions if v.status == Status.DRAFT), None)
    pathway.shown = pathway.published or (versions[0] if versions else None)


def specialties() -> list[str]:
    return list(
        Pathway.objects.exclude(specialty="").order_by("specialty").values_list("specialty", flat=True).distinct()
    )


def pathway_versions(user, pathway: Pathway) -> list[PathwayVersion]:
    return list(visible_versions(user).filter(pathway=pathway).select_related("published_by").order_by("-number"))


def plan(version: PathwayVersion) -> list[Stage]:
    """Stages in order, each with ``.plan_steps``; steps carry anchor, must-follow and planned resources.

    Four queries, whatever the size of the pathway.
    """
    stages = list(Stage.objects.filter(version=version).order_by("order", "id"))
    steps = (
        Step.objects.filter(version=version)
        .select_related("anchor")
        .prefetch_related(
            Prefetch("must_follow", queryset=Step.objects.only("id", "code", "name").order_by("code")),
            Prefetch("planned_resources", queryset=PlannedResource.objects.select_related("resource").order_by("id")),
        )
        .order_by("order", "id")
    )
    by_stage: dict[int, list[Step]] = {stage.pk: [] for stage in stages}
    for step in steps:
        by_stage.setdefault(step.stage_id, []).append(step)
    for stage in stages:
        stage.plan_steps = by_stage[stage.pk]
    return stages


def recent_changes(version_ids: list[int], limit: int = 30) -> list[PathwayChange]:
    return list(
        PathwayChange.objects.filter(version_id__in=version_ids)
        .select_related("actor", "version")
        .order_by("-at", "-id")[:limit]
    )
