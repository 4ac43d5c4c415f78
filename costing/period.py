"""Period view of a pathway portfolio: budget against actual, variance by cause of the gap.

For pathways p with standard episode cost E_p, budgeted episodes b_p and actual
episodes a_p in a financial year (N_b = sum b_p, N_a = sum a_p)::

    static budget            B = sum b_p E_p
    flexible budget          F = sum a_p E_p                 (actual volume at standard cost)
    volume variance          F - B = quantity + mix
      quantity               (N_a - N_b) x B / N_b            (more or fewer episodes at the budget mix)
      case mix               N_a x sum (a_p/N_a - b_p/N_b) E_p (a dearer or cheaper mix of pathways)
    flexible-budget variance A - F = rate + efficiency (+ standard revision)
      rate                   sum of episodes' price/rate variance (cash)
      efficiency             sum of episodes' usage and length-of-stay variance
      standard revision      sum of episodes' own E - F: episodes costed against another
                             version or another year's rates than the budget standard (zero
                             when every episode followed the budgeted standard)

Positive amounts cost more than planned: adverse (U); negative: favourable (F).
Budgets (``costing.models.Budget``) are whole-year episode volumes per pathway
entered by finance; E_p is the standard cost of the pathway's current published
version at the rates in force on 1 April of the year. Actual episodes are the
closed episodes started in the year (their cost summaries, ``EpisodeCost``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Count, Sum

from pathways.models import Pathway, PathwayVersion

from .engine import direction
from .models import Budget, EpisodeCost
from .standard import expected_episode_cost

ZERO = Decimal("0")


@dataclass
class PathwayPeriod:
    code: str
    name: str
    standard_cost: Decimal  # E_p
    budget_episodes: int  # b_p
    actual_episodes: int = 0  # a_p
    actual_cost: Decimal = ZERO  # sum of A over the actual episodes
    episodes_expected: Decimal = ZERO  # sum of each episode's own E
    rate_variance: Decimal = ZERO
    efficiency_variance: Decimal = ZERO

    @property
    def static_budget(self) -> Decimal:
        return self.budget_episodes * self.standard_cost

    @property
    def flexible_budget(self) -> Decimal:
        return self.actual_episodes * self.standard_cost


@dataclass
class PeriodAnalysis:
    financial_year: int | None
    pathways: list[PathwayPeriod] = field(default_factory=list)

    @property
    def budget_episodes(self) -> int:
        return sum(p.budget_episodes for p in self.pathways)

    @property
    def actual_episodes(self) -> int:
        return sum(p.actual_episodes for p in self.pathways)

    @property
    def static_budget(self) -> Decimal:
        return sum((p.static_budget for p in self.pathways), ZERO)

    @property
    def flexible_budget(self) -> Decimal:
        return sum((p.flexible_budget for p in self.pathways), ZERO)

    @property
    def actual_cost(self) -> Decimal:
        return sum((p.actual_cost for p in self.pathways), ZERO)

    @property
    def volume_variance(self) -> Decimal:
        return self.flexible_budget - self.static_budget

    @property
    def budget_average_cost(self) -> Decimal | None:
        """B / N_b: the standard cost of an average budgeted episode."""
        if not self.budget_episodes:
            return None
        return self.static_budget / self.budget_episodes

    @property
    def quantity_variance(self) -> Decimal:
        average = self.budget_average_cost
        if average is None:
            return self.volume_variance  # nothing budgeted: all of it is volume
        return (self.actual_episodes - self.budget_episodes) * average

    @property
    def mix_variance(self) -> Decimal:
        average = self.budget_average_cost
        if average is None:
            return ZERO
        # N_a x sum (a_p/N_a - b_p/N_b) E_p  ==  F - N_a x B/N_b  (exact in Decimal)
        return self.flexible_budget - self.actual_episodes * average

    @property
    def flexible_budget_variance(self) -> Decimal:
        return self.actual_cost - self.flexible_budget

    @property
    def rate_variance(self) -> Decimal:
        return sum((p.rate_variance for p in self.pathways), ZERO)

    @property
    def efficiency_variance(self) -> Decimal:
        return sum((p.efficiency_variance for p in self.pathways), ZERO)

    @property
    def standard_revision(self) -> Decimal:
        return sum((p.episodes_expected for p in self.pathways), ZERO) - self.flexible_budget

    @property
    def total_variance(self) -> Decimal:
        return self.actual_cost - self.static_budget

    def lines(self) -> list[tuple[str, str, Decimal]]:
        """(key, label, amount) from budget to actual: B + volume (quantity, mix) + rate + efficiency = A."""
        out = [
            ("static_budget", "Static budget (B)", self.static_budget),
            ("quantity", "Volume: quantity", self.quantity_variance),
            ("mix", "Volume: case mix", self.mix_variance),
            ("flexible_budget", "Flexible budget (F)", self.flexible_budget),
            ("rate", "Rate (price) variance", self.rate_variance),
            ("efficiency", "Efficiency (usage and length of stay) variance", self.efficiency_variance),
        ]
        if self.standard_revision:
            out.append(("standard_revision", "Standard revision (other versions or years)", self.standard_revision))
        out.append(("actual", "Actual cost (A)", self.actual_cost))
        return out


def label(amount: Decimal) -> str:
    return direction(amount)


def _standard_version(pathway: Pathway) -> PathwayVersion | None:
    versions = list(pathway.versions.exclude(status=PathwayVersion.Status.DRAFT).order_by("-number"))
    published = [v for v in versions if v.status == PathwayVersion.Status.PUBLISHED]
    return (published or versions or [None])[0]


def period_analysis(*, financial_year: int, pathway_codes: list[str] | None = None, episodes=None) -> PeriodAnalysis:
    """Budget against actual for ``financial_year`` over the budgeted pathways.

    ``episodes`` optionally narrows the actual side (an ``EpisodeCost`` queryset, e.g.
    a report's unit); by default every closed episode started in the year counts.
    """
    budgets = Budget.objects.filter(financial_year=financial_year).select_related("pathway").order_by("pathway__code")
    if pathway_codes:
        budgets = budgets.filter(pathway__code__in=pathway_codes)
    fy_start = date(financial_year, 4, 1)
    analysis = PeriodAnalysis(financial_year=financial_year)
    by_pathway: dict[int, PathwayPeriod] = {}
    for budget in budgets:
        version = _standard_version(budget.pathway)
        standard = expected_episode_cost(version, on=fy_start) if version else ZERO
        line = PathwayPeriod(
            code=budget.pathway.code,
            name=budget.pathway.name,
            standard_cost=standard,
            budget_episodes=budget.episodes,
        )
        by_pathway[budget.pathway_id] = line
        analysis.pathways.append(line)
    if not by_pathway:
        return analysis
    actual = EpisodeCost.objects.all() if episodes is None else episodes
    actual = actual.filter(
        pathway_id__in=list(by_pathway),
        started_on__gte=fy_start,
        started_on__lt=date(financial_year + 1, 4, 1),
    )
    rows = actual.values("pathway_id").annotate(
        n=Count("pk"),
        actual=Sum("actual"),
        expected=Sum("expected"),
        price=Sum("price_variance"),
        usage=Sum("usage_variance"),
        los=Sum("los_variance"),
    )
    for row in rows.order_by():
        line = by_pathway[row["pathway_id"]]
        line.actual_episodes = row["n"]
        line.actual_cost = row["actual"] or ZERO
        line.episodes_expected = row["expected"] or ZERO
        line.rate_variance = row["price"] or ZERO
        line.efficiency_variance = (row["usage"] or ZERO) + (row["los"] or ZERO)
    return analysis


def budgeted_financial_years() -> list[int]:
    return list(Budget.objects.values_list("financial_year", flat=True).distinct().order_by("-financial_year"))
