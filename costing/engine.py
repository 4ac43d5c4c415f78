"""The cost engine: what an episode actually cost, against what its pathway expected.

DOMAIN.md section 4, per episode:

- **Expected** E: each step's planned resources x its expected count ``f`` at the
  *standard* rate, the rate in force on the day the episode started.
- **Actual** A: each performed step at its actual quantities (the planned ones
  where an event gave none), at the same rates, or at the event's own
  ``unit_cost`` where it gave one (a dearer implant); per-day steps (a ward stay)
  at the actual length of stay, a day's events replacing its planned quantity by
  their sum; activities off the pathway (additions) with the resources they used.
  "An episode is costed with the rates in force on its date" (DOMAIN.md section 4):
  one date, its start, for expected and actual alike. A tariff change between the
  start and a later event or night is no price paid for this patient, so it makes
  no price variance, which a record (a delay, say) could then be blamed for.
- **Decomposition** per step x resource, so that ``A - E = PV + EV + LV`` exactly:
  price/rate ``PV = actual cost - actual qty x standard rate`` (cash), usage
  ``EV = (actual qty - standard qty) x standard rate`` (capacity consumed when
  the resource is salaried staff, cash otherwise) and, on per-day steps, length of
  stay ``LV = (actual LOS - expected LOS) x standard daily quantity x standard
  rate`` (the rest of a per-day step's usage stays in EV).

Each line with a variance is linked to the variance record that explains it: a
current variance on the same step about the same resource, else one on the same
step about no particular resource (never one about another resource: a dearer
implant does not explain a longer operation), of a type that can explain it. A
delay, early step or sequence departure changes no quantity by itself, so it
explains only a per-day step's line, and of it only the length-of-stay part (the
nights it added or saved, not a dearer day or a busier one); an
omission explains only a line used less than planned. A stay's line with nights
beyond the expected stay that no record on the stay explains falls back to a delay
on another step, documented with its cause: a system-caused one first, then the
earliest (a late operation lengthens the stay). For an addition, the
variance detected for that event, else an addition variance; a step not done
(actual below standard) on an exited episode falls back to the exit variance.
Otherwise the line is *unexplained*. The linked variance's cause lets reports
show the cost of system-caused variance on its own line.

Money stays ``Decimal`` at full precision; rounding is for display only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal

from django.db.models import Prefetch
from django.db.models.functions import TruncDate
from django.utils import timezone

from pathways.models import PlannedResource, Resource, Step
from variances.models import Episode, EventQuantity, StepEvent, Variance

from .models import EpisodeCost, financial_year_of
from .rates import rates_in_force

ZERO = Decimal("0")
UNEXPLAINED = EpisodeCost.Cause.UNEXPLAINED
REPEAT = EpisodeCost.Cause.REPEAT
# The version of what this module computes for an episode. Bump it whenever the arithmetic or
# the rule for which record explains a line changes: stored summaries computed under an
# earlier version are then stale, and the next report recomputes them (costing.summaries).
# 2: a record explains only what its type and resource can explain; a stay that ran over
# falls back to a documented delay on another step.
# 3: what a repeated step used, with no record to explain it, is counted under "Repeated
# steps" instead of "No cause recorded" (EpisodeCost.repeat_variance).
# 4: a stay's events replace each day's planned quantity once, by their sum for that day, and
# only on days of the stay; before, each event took away a whole planned day (a same-day
# discharge with nursing minutes recorded cost less than nothing).
# 5: actual cost at the rates in force on the episode's start, as expected cost (before, at
# each event's or night's: a tariff change mid-episode made price variance); a timing
# departure (delay, early, sequence) explains only a stay line's length-of-stay part.
RULES_VERSION = 5
CAUSES = [c.value for c in EpisodeCost.Cause]


class Component:
    PRICE = "price"
    USAGE = "usage"
    LOS = "los"

    LABELS = {PRICE: "Price / rate", USAGE: "Usage / efficiency", LOS: "Length of stay"}


class Nature:
    CASH = "cash"
    CAPACITY = "capacity"

    LABELS = {CASH: "cash", CAPACITY: "capacity consumed"}
    # Salaried staff time not used: freed for other patients, not cash saved.
    FREED = "capacity freed"


def direction(amount: Decimal) -> str:
    """U (adverse: costs more than expected), F (favourable) or '' for none."""
    if amount > 0:
        return "U"
    if amount < 0:
        return "F"
    return ""


# --- rates -------------------------------------------------------------------------------


class RateBook:
    """Rates in force, looked up once per financial year for all resources of a batch.

    Rates are set per financial year (April-March), so the rate in force on any
    day is the one in force on the first day of that day's financial year. An
    episode is costed at the rates in force on its start date.
    """

    def __init__(self, resource_ids: Iterable[int]):
        self.resource_ids = sorted(set(resource_ids))
        self._by_year: dict[int, dict[int, Decimal]] = {}
        # The same year's rates by day as well: a full recomputation asks once per resource of
        # each episode, with the episode's start date.
        self._by_day: dict[date, dict[int, Decimal]] = {}

    def rate(self, resource_id: int, on: date) -> Decimal | None:
        rates = self._by_day.get(on)
        if rates is None:
            rates = self._by_day[on] = self._year(financial_year_of(on))
        return rates.get(resource_id)

    def _year(self, fy: int) -> dict[int, Decimal]:
        rates = self._by_year.get(fy)
        if rates is None:
            found = rates_in_force(self.resource_ids, date(fy, 4, 1))
            rates = self._by_year[fy] = {rid: _rate_value(value) for rid, value in found.items()}
        return rates


def _rate_value(value) -> Decimal:
    return value if isinstance(value, Decimal) else value.rate


# --- results -------------------------------------------------------------------------------


@dataclass
class CostLine:
    """One step x resource of an episode (or one resource of an addition event)."""

    step: Step | None
    resource: Resource
    event: EventRow | None = None
    standard_quantity: Decimal = ZERO
    actual_quantity: Decimal = ZERO
    standard_rate: Decimal = ZERO
    standard_cost: Decimal = ZERO
    actual_cost: Decimal = ZERO
    price_variance: Decimal = ZERO
    usage_variance: Decimal = ZERO
    los_variance: Decimal = ZERO
    variance: Variance | None = None
    rate_missing: bool = False
    occurrences: int = 0  # events on the step (not per-day steps): a repeat shows as occurrences > expected count
    planned: bool = True  # a resource the step plans (not one an event used beyond the plan)

    @property
    def total_variance(self) -> Decimal:
        return self.actual_cost - self.standard_cost

    @property
    def salaried(self) -> bool:
        return self.resource.salaried

    @property
    def cause(self) -> str:
        if self.variance is None:
            return REPEAT if self.repeated else UNEXPLAINED
        return self.variance.cause or UNEXPLAINED

    def variance_of(self, component: str) -> Variance | None:
        """The record that explains one part of the line.

        A timing departure (a delay, an early step) explains the nights it added or saved,
        not a dearer day or a busier one: a stay's price and usage parts are left to no
        record rather than follow a delay that may be the clinician's.
        """
        variance = self.variance
        if variance is not None and variance.variance_type in TIMING_TYPES and component != Component.LOS:
            return None
        return variance

    def cause_of(self, component: str) -> str:
        """The cause of one part of the line: its record's (``variance_of``); a repeat explains what it
        used, not a dearer price."""
        variance = self.variance_of(component)
        if variance is not None:
            return variance.cause or UNEXPLAINED
        if self.variance is None and self.repeated and component != Component.PRICE:
            return REPEAT
        return UNEXPLAINED

    def by_cause(self) -> list[tuple[str, Decimal]]:
        """The line's variance by cause: each part under its own (see ``cause_of``), in a fixed order."""
        totals: dict[str, Decimal] = {}
        for component, amount in (
            (Component.LOS, self.los_variance),
            (Component.USAGE, self.usage_variance),
            (Component.PRICE, self.price_variance),
        ):
            cause = self.cause_of(component)
            totals[cause] = totals.get(cause, ZERO) + amount
        return list(totals.items())

    @property
    def repeated(self) -> bool:
        """The step was done more often than planned: usage variance, yet no departure (DOMAIN.md section 3).

        Only of a resource the step plans: one it does not plan is used beyond the plan however
        often the step was done.
        """
        return (
            self.step is not None
            and self.planned
            and not self.step.per_day
            and self.occurrences > self.step.planned_occurrences
            and self.usage_variance > 0
        )

    @property
    def conditional(self) -> bool:
        """A step planned for only some episodes (expected count below 1: its probability)."""
        return self.step is not None and not self.step.per_day and self.step.expected_count < 1

    @property
    def label(self) -> str:
        if self.step is not None:
            return self.step.name
        return self.event.activity if self.event is not None else ""


@dataclass
class VarianceLine:
    """One component of a line's variance, as a report or an episode page shows it."""

    component: str
    nature: str
    amount: Decimal
    line: CostLine

    @property
    def direction(self) -> str:
        return direction(self.amount)

    @property
    def component_label(self) -> str:
        return Component.LABELS[self.component]

    @property
    def nature_label(self) -> str:
        if self.nature == Nature.CAPACITY and self.amount < 0:
            return Nature.FREED
        return Nature.LABELS[self.nature]

    @property
    def variance(self) -> Variance | None:
        return self.line.variance_of(self.component)

    @property
    def cause(self) -> str:
        return self.line.cause_of(self.component)


@dataclass
class EpisodeCosting:
    episode: Episode
    lines: list[CostLine] = field(default_factory=list)
    los_days: int = 0
    expected_los_days: Decimal = ZERO
    as_of: datetime | None = None
    # Activities off the pathway recorded without the resources they used: they count as nothing.
    uncosted: list[str] = field(default_factory=list)

    @property
    def expected(self) -> Decimal:
        return sum((line.standard_cost for line in self.lines), ZERO)

    @property
    def actual(self) -> Decimal:
        return sum((line.actual_cost for line in self.lines), ZERO)

    @property
    def total_variance(self) -> Decimal:
        return self.actual - self.expected

    @property
    def price_variance(self) -> Decimal:
        return sum((line.price_variance for line in self.lines), ZERO)

    @property
    def usage_variance(self) -> Decimal:
        return sum((line.usage_variance for line in self.lines), ZERO)

    @property
    def los_variance(self) -> Decimal:
        return sum((line.los_variance for line in self.lines), ZERO)

    @property
    def capacity_variance(self) -> Decimal:
        """Usage and length-of-stay variance on salaried staff: capacity consumed, not cash."""
        return sum((line.usage_variance + line.los_variance for line in self.lines if line.salaried), ZERO)

    @property
    def missing_rates(self) -> int:
        return len({line.resource.id for line in self.lines if line.rate_missing})

    def by_cause(self) -> dict[str, Decimal]:
        totals = dict.fromkeys(CAUSES, ZERO)
        for line in self.lines:
            if line.total_variance:
                for cause, amount in line.by_cause():
                    totals[cause] += amount
        return totals

    def decomposition(self) -> list[VarianceLine]:
        """Every non-zero variance component: adverse ones first, then favourable, each largest first."""
        out = []
        for line in self.lines:
            usage_nature = Nature.CAPACITY if line.salaried else Nature.CASH
            for component, nature, amount in (
                (Component.PRICE, Nature.CASH, line.price_variance),
                (Component.USAGE, usage_nature, line.usage_variance),
                (Component.LOS, usage_nature, line.los_variance),
            ):
                if amount:
                    out.append(VarianceLine(component=component, nature=nature, amount=amount, line=line))
        out.sort(key=lambda v: (v.amount < 0, -abs(v.amount)))
        return out

    def component_totals(self) -> dict[tuple[str, str], Decimal]:
        """Variance by (component, nature): the episode's waterfall."""
        totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for v in self.decomposition():
            totals[(v.component, v.nature)] += v.amount
        return dict(totals)


# --- computation ------------------------------------------------------------------------------


def local_date(value: datetime, zone: tzinfo | None = None) -> date:
    return value.astimezone(zone or timezone.get_current_timezone()).date()


def length_of_stay(episode: Episode, as_of: datetime | None = None, zone: tzinfo | None = None) -> int:
    """Nights from the start's date to the end's (or to ``as_of`` for an active episode), in local time.

    The same nights as ``Episode.length_of_stay_days`` for an ended episode; ``zone`` spares a
    full recomputation looking the current time zone up twice per episode.
    """
    zone = zone or timezone.get_current_timezone()
    end = local_date(episode.ended_at or as_of or timezone.now(), zone)
    return max((end - local_date(episode.started_at, zone)).days, 0)


class EventRow:
    """The fields of a step event the engine reads.

    Loaded as plain values rather than model instances: a full recomputation after a
    rate change loads every event of every closed episode, and building model
    instances cost more than the costing itself (bench/reports.py).
    """

    __slots__ = ("pk", "episode_id", "step_id", "activity", "day", "quantity_rows")

    def __init__(self, pk, episode_id, step_id, activity, day, quantity_rows):
        self.pk = pk
        self.episode_id = episode_id
        self.step_id = step_id
        self.activity = activity
        self.day = day  # local date: which day of a stay the event's quantities belong to
        self.quantity_rows = quantity_rows


class QuantityRow:
    """An event's actual use of one resource: ``amount`` (quantity x headcount), its own ``unit_cost`` if any."""

    __slots__ = ("resource_id", "resource", "amount", "unit_cost")

    def __init__(self, resource_id, resource, amount, unit_cost):
        self.resource_id = resource_id
        self.resource = resource
        self.amount = amount
        self.unit_cost = unit_cost


class PlannedUse:
    """A step's planned use of one resource, per occurrence (quantity x headcount)."""

    __slots__ = ("resource_id", "resource", "per_occurrence")

    def __init__(self, planned: PlannedResource):
        self.resource_id = planned.resource_id
        self.resource = planned.resource
        self.per_occurrence = planned.quantity * planned.headcount


class _LocalDate(TruncDate):
    """``TruncDate`` without its converter in Python, which only turns datetimes into dates.

    PostgreSQL returns dates already, and SQLite's text is read by the date field's own
    converter; a full recomputation would otherwise call it once per event.
    """

    def get_db_converters(self, connection):
        return self.output_field.get_db_converters(connection)


class _Batch:
    """Everything needed to cost a set of episodes, loaded with a fixed number of queries."""

    def __init__(self, episodes: list[Episode]):
        self.episodes = episodes
        self.zone = timezone.get_current_timezone()
        episode_ids = [e.pk for e in episodes]
        version_ids = {e.version_id for e in episodes}
        planned = PlannedResource.objects.select_related("resource").order_by("id")
        steps = (
            Step.objects.filter(version_id__in=version_ids)
            .select_related("stage")
            .prefetch_related(Prefetch("planned_resources", queryset=planned))
            .order_by("version_id", "stage__order", "order", "id")
        )
        # Each step with its planned resources, listed once (not a related manager per episode).
        self.plans_by_version: dict[int, list[tuple[Step, list[PlannedUse]]]] = defaultdict(list)
        for step in steps:
            self.plans_by_version[step.version_id].append(
                (step, [PlannedUse(planned) for planned in step.planned_resources.all()])
            )
        # Grouped by hand rather than with prefetch_related, whose per-event bookkeeping cost
        # more than the costing itself in a full recomputation (bench/reports.py). One query
        # whatever the batch: quantities as plain values with their resource's columns joined
        # in, and one Resource instance built per resource, not per quantity.
        resource_fields = [f.attname for f in Resource._meta.concrete_fields]
        pk_at = resource_fields.index(Resource._meta.pk.attname)
        resources: dict[int, Resource] = {}
        quantities: dict[int, list[QuantityRow]] = defaultdict(list)
        quantity_rows = (
            EventQuantity.objects.filter(event__episode_id__in=episode_ids)
            .order_by("id")
            .values_list("event_id", "quantity", "headcount", "unit_cost", *(f"resource__{f}" for f in resource_fields))
        )
        for event_id, quantity, headcount, unit_cost, *resource_row in quantity_rows:
            resource_id = resource_row[pk_at]
            resource = resources.get(resource_id)
            if resource is None:
                resource = resources[resource_id] = Resource.from_db(quantity_rows.db, resource_fields, resource_row)
            quantities[event_id].append(QuantityRow(resource_id, resource, quantity * headcount, unit_cost))
        no_quantities: list[QuantityRow] = []
        self.events_by_episode: dict[int, list[EventRow]] = defaultdict(list)
        # The event's local date comes from the database (in the current time zone, as
        # timezone.localtime would give it): cheaper to read than the timestamp it comes from.
        rows = (
            StepEvent.objects.filter(episode_id__in=episode_ids)
            .order_by("occurred_at", "id")
            .values_list("id", "episode_id", "step_id", "activity", _LocalDate("occurred_at"))
        )
        for pk, episode_id, step_id, activity, day in rows:
            self.events_by_episode[episode_id].append(
                EventRow(pk, episode_id, step_id, activity, day, quantities.get(pk, no_quantities))
            )
        variances = (
            Variance.objects.current()
            .filter(episode_id__in=episode_ids)
            .select_related("detection")
            .order_by("occurred_at", "id")
        )
        self.variances_by_episode: dict[int, list[Variance]] = defaultdict(list)
        for variance in variances:
            self.variances_by_episode[variance.episode_id].append(variance)
        resource_ids = {
            pr.resource_id for plans in self.plans_by_version.values() for _, planned in plans for pr in planned
        }
        resource_ids |= {q.resource_id for rows in quantities.values() for q in rows}
        self.rates = RateBook(resource_ids)


def cost_episodes(episodes: Iterable[Episode], *, as_of: datetime | None = None) -> dict[int, EpisodeCosting]:
    """Cost many episodes with a fixed number of queries (whatever their number)."""
    episodes = list(episodes)
    if not episodes:
        return {}
    batch = _Batch(episodes)
    return {episode.pk: _cost_one(episode, batch, as_of) for episode in episodes}


def cost_episode(episode: Episode, *, as_of: datetime | None = None) -> EpisodeCosting:
    """Expected and actual cost of one episode, with its variance decomposed and explained."""
    return cost_episodes([episode], as_of=as_of)[episode.pk]


def _cost_one(episode: Episode, batch: _Batch, as_of: datetime | None) -> EpisodeCosting:
    start = local_date(episode.started_at, batch.zone)
    los = length_of_stay(episode, as_of, batch.zone)
    result = EpisodeCosting(episode=episode, los_days=los, as_of=as_of)
    events = batch.events_by_episode.get(episode.pk, [])
    by_step: dict[int, list[EventRow]] = defaultdict(list)
    additions = []
    for event in events:
        if event.step_id is None:
            additions.append(event)
        else:
            by_step[event.step_id].append(event)
    rates = batch.rates

    def rate(resource_id: int, line: CostLine) -> Decimal:
        """The rate in force on the episode's date: its standard rate, and its actual one too."""
        value = rates.rate(resource_id, start)
        if value is None:
            line.rate_missing = True
            return ZERO
        return value

    for step, planned_resources in batch.plans_by_version.get(episode.version_id, []):
        f = step.expected_count
        if step.per_day:
            result.expected_los_days += f
        step_events = by_step.get(step.id, [])
        planned_ids = set()
        for planned in planned_resources:
            planned_ids.add(planned.resource_id)
            line = CostLine(step=step, resource=planned.resource)
            per_occurrence = planned.per_occurrence
            line.standard_rate = rate(planned.resource_id, line)
            line.standard_quantity = f * per_occurrence
            line.standard_cost = line.standard_quantity * line.standard_rate
            if step.per_day:
                _per_day_actual(line, per_occurrence, start, los, step_events)
                base_quantity = los * per_occurrence
                line.los_variance = (los - f) * per_occurrence * line.standard_rate
                line.usage_variance = (line.actual_quantity - base_quantity) * line.standard_rate
            else:
                line.occurrences = len(step_events)
                for event in step_events:
                    quantity = _quantity_for(event, planned.resource_id)
                    if quantity is None:
                        qty, price = per_occurrence, None
                    else:
                        qty, price = quantity.amount, quantity.unit_cost
                    if price is None:
                        price = line.standard_rate
                    line.actual_quantity += qty
                    line.actual_cost += qty * price
                line.usage_variance = (line.actual_quantity - line.standard_quantity) * line.standard_rate
            line.price_variance = line.actual_cost - line.actual_quantity * line.standard_rate
            result.lines.append(line)
        # Resources an event used that the step did not plan: all usage (and price).
        extra: dict[int, CostLine] = {}
        for event in step_events:
            for quantity in event.quantity_rows:
                if quantity.resource_id in planned_ids:
                    continue
                line = extra.get(quantity.resource_id)
                if line is None:
                    line = extra[quantity.resource_id] = CostLine(
                        step=step, resource=quantity.resource, occurrences=len(step_events), planned=False
                    )
                    line.standard_rate = rate(quantity.resource_id, line)
                _add_unplanned(line, quantity)
        result.lines.extend(_finish_unplanned(line) for line in extra.values())
    for event in additions:
        if not event.quantity_rows:
            result.uncosted.append(event.activity)
        for quantity in event.quantity_rows:
            line = CostLine(step=None, resource=quantity.resource, event=event)
            line.standard_rate = rate(quantity.resource_id, line)
            _add_unplanned(line, quantity)
            result.lines.append(_finish_unplanned(line))
    _explain(result.lines, batch.variances_by_episode.get(episode.pk, []))
    return result


def _quantity_for(event: EventRow, resource_id: int) -> QuantityRow | None:
    for quantity in event.quantity_rows:
        if quantity.resource_id == resource_id:
            return quantity
    return None


def _per_day_actual(line: CostLine, per_day: Decimal, start: date, los: int, events) -> None:
    """A per-day step: ``los`` days of its daily plan at the line's standard rate.

    The events on the step that give a quantity for this resource are summed per day. A day
    of the stay (the start's date up to the night before the end) with such events uses
    their sum instead of its planned quantity, once however many events fell on it; an
    event outside the stay (on a same-day discharge, or on the day of leaving) has no
    planned day to replace, so it is use beyond the plan. Either way the quantity is never
    below zero. An event's ``unit_cost``, if any, replaces the rate for its quantity.
    """
    resource_id = line.resource.id
    used_by_day: dict[date, list[QuantityRow]] = defaultdict(list)
    for event in events:
        quantity = _quantity_for(event, resource_id)
        if quantity is not None:
            used_by_day[event.day].append(quantity)
    days_with_events = sum(1 for day in used_by_day if 0 <= (day - start).days < los)
    planned_days = los - days_with_events
    line.actual_quantity += planned_days * per_day
    line.actual_cost += planned_days * per_day * line.standard_rate
    for quantities in used_by_day.values():
        for quantity in quantities:
            _add_unplanned(line, quantity)


def _add_unplanned(line: CostLine, quantity: QuantityRow) -> None:
    """What an event used of the line's resource: at its own ``unit_cost``, else the standard rate."""
    qty = quantity.amount
    price = quantity.unit_cost if quantity.unit_cost is not None else line.standard_rate
    line.actual_quantity += qty
    line.actual_cost += qty * price


def _finish_unplanned(line: CostLine) -> CostLine:
    line.usage_variance = line.actual_quantity * line.standard_rate
    line.price_variance = line.actual_cost - line.usage_variance
    return line


# Departures in timing: by themselves they change what a stay costs, not what a step used.
TIMING_TYPES = frozenset({Variance.Type.DELAY, Variance.Type.EARLY, Variance.Type.SEQUENCE})


def _can_explain(variance: Variance, line: CostLine) -> bool:
    if variance.resource_id is not None and variance.resource_id != line.resource.id:
        return False
    if variance.variance_type in TIMING_TYPES:
        return line.step.per_day
    if variance.variance_type == Variance.Type.OMISSION:
        return line.actual_quantity < line.standard_quantity
    return True


def _stay_delay(variances: list[Variance]) -> Variance | None:
    """The delay a longer stay falls back to: one on a step, documented with its cause and about
    no particular resource; a system-caused one first (the organisation's, never the clinician's),
    then the earliest. An undocumented delay takes nothing: its cause is not known yet."""
    delays = [
        v
        for v in variances
        if v.step_id and v.variance_type == Variance.Type.DELAY and v.cause and v.resource_id is None
    ]
    return next((v for v in delays if v.cause == Variance.Cause.SYSTEM), None) or next(iter(delays), None)


def _explain(lines: list[CostLine], variances: list[Variance]) -> None:
    """Link each line that has a variance to the variance record that explains it."""
    by_step: dict[int, list[Variance]] = defaultdict(list)
    unstepped: list[Variance] = []
    for variance in variances:
        (by_step[variance.step_id] if variance.step_id else unstepped).append(variance)
    exit_variance = next((v for v in unstepped if v.variance_type == Variance.Type.EXIT), None)
    additions = [v for v in unstepped if v.variance_type == Variance.Type.ADDITION]
    stay_delay = _stay_delay(variances)
    for line in lines:
        if not line.total_variance:
            continue
        if line.step is not None:
            candidates = [v for v in by_step.get(line.step.id, ()) if _can_explain(v, line)]
            line.variance = next((v for v in candidates if v.resource_id is not None), None) or next(
                iter(candidates), None
            )
        else:
            # The addition detected for this very event, else one recorded by hand
            # (not detected for some other event).
            detected = [v for v in additions if v.detection_id and v.detection.event_id == line.event.pk]
            candidates = detected or [v for v in additions if not (v.detection_id and v.detection.event_id)]
            line.variance = (
                next((v for v in candidates if v.resource_id == line.resource.id), None)
                or next((v for v in candidates if v.resource_id is None), None)
                or next(iter(candidates), None)
            )
        if line.variance is None and line.step is not None and line.step.per_day and line.los_variance > 0:
            # Nights beyond the expected stay that no record on the stay explains: a delay
            # elsewhere (surgery waiting for a theatre list) is what lengthens a stay.
            line.variance = stay_delay
        if line.variance is None and exit_variance is not None and line.actual_quantity < line.standard_quantity:
            line.variance = exit_variance
