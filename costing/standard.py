"""The standard (expected) cost of a pathway version, with its provenance.

DOMAIN.md section 4::

    step cost          cost_s = sum_r headcount_sr * quantity_sr * rate_r
    expected episode   E = sum_s f_s * cost_s

``f_s`` is the step's ``expected_count``: 1, the expected days of a per-day step,
the expected sessions of a repeated step, or a probability for a conditional one.
Rates are the ones in force on the costing date (``costing.rates``). Everything
is full-precision Decimal; round only to display (``costing.money.display``).

A resource with no rate in force costs zero on its line and is reported in
``missing_rates`` so that the page can say so instead of showing a silently low E.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from accounts.audit import audit_record
from pathways.models import Pathway, PathwayVersion, PlannedResource, Resource, Stage, Step

from .models import Budget, CostRate, financial_year_of
from .rates import rates_in_force

ZERO = Decimal("0")


@dataclass(frozen=True)
class CostLine:
    """One provenance line: headcount x quantity x rate = cost (for one occurrence of the step)."""

    resource: Resource
    quantity: Decimal
    headcount: int
    rate: CostRate | None
    cost: Decimal

    @property
    def rate_value(self) -> Decimal | None:
        return self.rate.rate if self.rate else None

    @property
    def rate_source(self) -> str:
        return self.rate.source if self.rate else ""

    @property
    def financial_year(self) -> int | None:
        return self.rate.financial_year if self.rate else None

    @property
    def missing_rate(self) -> bool:
        return self.rate is None


@dataclass(frozen=True)
class StepCost:
    step: Step
    lines: tuple[CostLine, ...]
    cost: Decimal  # cost_s: one occurrence
    expected_count: Decimal  # f_s
    expected_cost: Decimal  # f_s * cost_s

    @property
    def missing_rates(self) -> list[Resource]:
        return [line.resource for line in self.lines if line.missing_rate]


@dataclass(frozen=True)
class StageCost:
    stage: Stage
    steps: tuple[StepCost, ...]
    expected_cost: Decimal


@dataclass(frozen=True)
class VersionCost:
    version: PathwayVersion
    on: date
    stages: tuple[StageCost, ...]
    expected_cost: Decimal  # E
    currency: str = field(default_factory=lambda: settings.CURRENCY)

    @property
    def financial_year(self) -> int:
        return financial_year_of(self.on)

    @property
    def steps(self) -> list[StepCost]:
        return [sc for stage in self.stages for sc in stage.steps]

    def step(self, code: str) -> StepCost:
        for sc in self.steps:
            if sc.step.code == code:
                return sc
        raise KeyError(code)

    @property
    def missing_rates(self) -> list[Resource]:
        seen: dict[int, Resource] = {}
        for sc in self.steps:
            for resource in sc.missing_rates:
                seen.setdefault(resource.pk, resource)
        return sorted(seen.values(), key=lambda r: r.code)


def step_cost(step: Step, rates: dict[int, CostRate]) -> StepCost:
    """Cost one step from its planned resources (prefetch them) and a ``rates_in_force`` dict."""
    lines = []
    for planned in step.planned_resources.all():
        rate = rates.get(planned.resource_id)
        cost = planned.headcount * planned.quantity * rate.rate if rate else ZERO
        lines.append(
            CostLine(
                resource=planned.resource,
                quantity=planned.quantity,
                headcount=planned.headcount,
                rate=rate,
                cost=cost,
            )
        )
    cost = sum((line.cost for line in lines), ZERO)
    return StepCost(
        step=step,
        lines=tuple(lines),
        cost=cost,
        expected_count=step.expected_count,
        expected_cost=step.expected_count * cost,
    )


def step_standard_cost(step: Step, *, on: date | None = None) -> StepCost:
    """The provenance of one step's cost on a date (two queries)."""
    on = on or timezone.localdate()
    step = Step.objects.prefetch_related(
        Prefetch("planned_resources", queryset=PlannedResource.objects.select_related("resource").order_by("id"))
    ).get(pk=step.pk)
    rates = rates_in_force({p.resource_id for p in step.planned_resources.all()}, on)
    return step_cost(step, rates)


def steps_with_resources(version: PathwayVersion):
    return (
        Step.objects.filter(version=version)
        .select_related("stage", "anchor")
        .prefetch_related(
            Prefetch("planned_resources", queryset=PlannedResource.objects.select_related("resource").order_by("id"))
        )
        .order_by("stage__order", "stage_id", "order", "id")
    )


def version_standard_cost(version: PathwayVersion, *, on: date | None = None) -> VersionCost:
    """Stage by stage, step by step cost of ``version`` with the rates in force on ``on`` (today by default).

    Four queries whatever the size of the pathway: stages, steps, planned
    resources (with their resources) and rates.
    """
    on = on or timezone.localdate()
    stages = list(Stage.objects.filter(version=version).order_by("order", "id"))
    steps = list(steps_with_resources(version))
    resource_ids = {p.resource_id for s in steps for p in s.planned_resources.all()}
    rates = rates_in_force(resource_ids, on)
    by_stage: dict[int, list[StepCost]] = {stage.pk: [] for stage in stages}
    for step in steps:
        by_stage.setdefault(step.stage_id, []).append(step_cost(step, rates))
    stage_costs = tuple(
        StageCost(
            stage=stage,
            steps=tuple(by_stage[stage.pk]),
            expected_cost=sum((sc.expected_cost for sc in by_stage[stage.pk]), ZERO),
        )
        for stage in stages
    )
    total = sum((stage.expected_cost for stage in stage_costs), ZERO)
    return VersionCost(version=version, on=on, stages=stage_costs, expected_cost=total)


def expected_episode_cost(version: PathwayVersion, *, on: date | None = None) -> Decimal:
    """E for one episode on ``version`` started on ``on``."""
    return version_standard_cost(version, on=on).expected_cost


@dataclass(frozen=True)
class StepDelta:
    code: str
    name: str
    before: Decimal | None  # None: the step is not in the old version
    after: Decimal | None  # None: the step was removed

    @property
    def delta(self) -> Decimal:
        return (self.after or ZERO) - (self.before or ZERO)


@dataclass(frozen=True)
class CostDelta:
    old: VersionCost
    new: VersionCost
    steps: tuple[StepDelta, ...]

    @property
    def delta(self) -> Decimal:
        return self.new.expected_cost - self.old.expected_cost


def version_cost_delta(old: PathwayVersion, new: PathwayVersion, *, on: date | None = None) -> CostDelta:
    """E of two versions with the same rates (those in force on ``on``), step by step.

    Same rates on both sides, so the delta is the change in the plan, not in prices.
    """
    on = on or timezone.localdate()
    before, after = version_standard_cost(old, on=on), version_standard_cost(new, on=on)
    old_steps = {sc.step.code: sc for sc in before.steps}
    new_steps = {sc.step.code: sc for sc in after.steps}
    rows = []
    for code in [*new_steps, *(c for c in old_steps if c not in new_steps)]:
        was, now = old_steps.get(code), new_steps.get(code)
        if was is not None and now is not None and was.expected_cost == now.expected_cost:
            continue
        rows.append(
            StepDelta(
                code=code,
                name=(now or was).step.name,
                before=was.expected_cost if was else None,
                after=now.expected_cost if now else None,
            )
        )
    return CostDelta(old=before, new=after, steps=tuple(rows))


# --- budgets: planned episode volumes, which reports cost at standard ---------------------------


@transaction.atomic
def budget_set(*, pathway: Pathway, financial_year: int, episodes: int, actor) -> tuple[Budget, str]:
    """Create or change the budgeted number of episodes of ``pathway`` in ``financial_year``."""
    budget = Budget.objects.select_for_update().filter(pathway=pathway, financial_year=financial_year).first()
    before = budget.episodes if budget else None
    if budget is not None and before == episodes:
        return budget, "unchanged"
    budget = budget or Budget(pathway=pathway, financial_year=financial_year)
    budget.episodes = episodes
    budget.updated_at = timezone.now()
    budget.updated_by = actor
    budget.full_clean(validate_unique=before is None)
    budget.save()
    audit_record(
        action="budget.create" if before is None else "budget.update",
        actor=actor,
        obj=budget,
        detail={"pathway": pathway.code, "financial_year": financial_year, "before": before, "after": episodes},
    )
    return budget, "created" if before is None else "updated"


@transaction.atomic
def budget_delete(*, budget: Budget, actor) -> None:
    detail = {"pathway": budget.pathway.code, "financial_year": budget.financial_year, "episodes": budget.episodes}
    pk = budget.pk
    budget.delete()
    audit_record(action="budget.delete", actor=actor, object_type="costing.budget", object_id=str(pk), detail=detail)
