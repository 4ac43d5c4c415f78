"""Demo episodes on TKR and HIP-FRACTURE: 18 months of care, departures and their reasons.

What it produces (deterministic: a fixed random seed, times relative to today):
- about 110 knee replacements (elective, weekday mornings) and 90 hip fractures
  (any hour) over the last 18 months, mostly completed, a few still on the ward;
- about a third of them depart from the pathway (a step late, early, missed or done
  out of order, an activity not on the plan, occasionally an exit), the rest on time
  (steps may repeat: repeats are recorded, never variances);
- what the detector finds is not invented: events go in, ``evaluate_episodes`` runs
  the product's own rules;
- documentation as a ward would have it: most detected departures explained by the
  responsible clinician with a realistic reason, a handful of recent ones still
  unexplained in the demo clinician's inbox, the lead's reviews done except the most
  recent few, one amendment and one withdrawal for the history pages. A lead never
  reviews what they documented: the demo lead's own (on his patients) are reviewed by
  a colleague lead of the unit, whom nobody signs in as;
- explanations that fit the step departed from (a late pre-operative assessment does
  not wait for a discharge care package) or, for an addition, the activity;
- some operations used an implant or consumables pack dearer than the standard rate
  (a price variance, cash): some dearer implants explained as a substitution, the
  rest not.

Episodes and events are written in bulk (one audit event for the load); every
variance goes through ``variances.services`` (or the bulk detection path), so
revisions, audit and invariants are the product's own. Idempotent: if demo episodes
exist it does nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Membership, User
from pathways.models import PathwayVersion, PlannedResource, Step
from variances import services
from variances.detection import EventFact, evaluate_episodes, first_events, load_step_specs, window
from variances.models import Episode, EventQuantity, ReasonCode, StepEvent, Variance
from variances.reasons import seed_base_reasons

SEED = 20_240_601
REF_PREFIX = "DEMO-"
DAYS = 548  # 18 months
VERSION_SWITCH_DAYS = 270
ON_WARD = 5  # per pathway

# pathway code -> how many, units, arrival pattern
PLAN = {
    "TKR": {"count": 110, "units": ["ORTHO-ELEC", "ORTHO-W7"], "elective": True},
    "HIP-FRACTURE": {"count": 90, "units": ["ORTHO-W7"], "elective": False},
}
DEPARTURE_SHARE = 0.3  # some departures (an optional step skipped) are not variances

# Local reasons per pathway: what the wards actually say (system causes mostly).
LOCAL_REASONS = {
    "TKR": [
        ("theatre-list-overran", "Theatre list overran or was cancelled", "system"),
        ("no-ward-bed", "No orthopaedic bed available on the ward", "system"),
        ("awaiting-care-package", "Awaiting social care package for discharge", "community"),
    ],
    "HIP-FRACTURE": [
        ("anticoagulant-reversal", "Surgery delayed for anticoagulant reversal", "patient"),
        ("awaiting-ortho-geriatrician", "Awaiting orthogeriatrician review", "system"),
        ("no-trauma-theatre", "No trauma theatre slot available", "system"),
    ],
}

# (variance type) -> [(reason code, rationale)], chosen by the clinician who explains, where
# STEP_EXPLANATIONS has nothing for the step. Worded to fit any step.
EXPLANATIONS = {
    "delay": [
        ("limited-time", "Team covering two wards after sickness; done later in the day."),
        ("need-more-info", "Waited for results from the day before to be confirmed first."),
    ],
    "early": [
        ("indication-order-exists", "Done before arrival by the referring team; repeated here."),
        ("risk-benefit-ratio", "Patient ready early; the team agreed to go ahead."),
    ],
    "omission": [
        ("patient-contraindication", "Hypotensive after spinal; mobilisation deferred to the next day."),
        ("patient-fears-discomfort", "Declined physiotherapy because of pain; analgesia reviewed."),
        ("service-not-available", "No weekend physiotherapy on the ward this Sunday."),
        ("action-not-priority", "Treated for delirium first; assessment postponed."),
        ("patient-refuses", "Declined."),
        ("limited-time", "Ward short of two nurses; the assessment was not documented in time."),
    ],
    "sequence": [
        ("wrong-time-workflow", "Done as soon as the team was free; the earlier step was logged afterwards."),
        ("policy-contradicts", "Local protocol puts this step first for patients like this one."),
    ],
    "addition": [
        ("mitigate-risk-negative-outcome", "Extra care needed after surgery; reviewed by the team."),
    ],
}
# What a clinician says about a departure depends on the step: a late pre-operative assessment is
# not waiting for a discharge care package. (variance type) -> (step code or step type) -> options;
# a step's own code first, then its type. Each pathway's local codes are filtered as above.
STEP_EXPLANATIONS = {
    "delay": {
        "PREOP": [
            ("limited-time", "Pre-assessment nurse covering two clinics; assessed later in the morning."),
            ("need-more-info", "Waited for the GP's medication list before the assessment."),
            ("no-ward-bed", "Admitted to an outlier ward; assessed on transfer."),
        ],
        "ED-ASSESS": [
            ("limited-time", "Department at full capacity; triage took longer than planned."),
            ("wrong-time-workflow", "Arrived at shift change; the handover delayed the assessment."),
        ],
        "ORTHOGERI": [
            ("awaiting-ortho-geriatrician", "No orthogeriatrician at the weekend; assessed on Monday."),
            ("limited-time", "Orthogeriatric team covering two wards after sickness."),
        ],
        "DELIRIUM": [
            ("limited-time", "Ward short of two nurses; the 4AT was done the next morning."),
            ("action-not-priority", "Treated for hypotension first; screened once stable."),
        ],
        "XRAY": [
            ("service-not-available", "Radiographer busy in resus; imaged an hour later."),
            ("limited-time", "Department at full capacity; the request went in late."),
        ],
        "BLOODS": [
            ("limited-time", "Department at full capacity; bloods taken late."),
            ("action-not-priority", "Analgesia and warming first; bloods taken after."),
        ],
        Step.Type.PROCEDURE: [
            ("theatre-list-overran", "Emergency case took the morning list; operated on the afternoon list."),
            ("no-trauma-theatre", "Trauma list full with two open fractures; first slot next morning."),
            ("anticoagulant-reversal", "On apixaban; waited for levels to fall before spinal anaesthesia."),
            ("awaiting-ortho-geriatrician", "Needed medical optimisation of sodium before theatre."),
            ("need-more-info", "Waited for the echocardiogram result before proceeding."),
        ],
        Step.Type.THERAPY: [
            ("limited-time", "Physiotherapist covering two wards after sickness."),
            ("patient-contraindication", "Dizzy and hypotensive on the first attempt; mobilised in the afternoon."),
            ("service-not-available", "No weekend physiotherapy on the ward; seen on Monday."),
        ],
        Step.Type.MEDICATION: [
            ("limited-time", "Department at full capacity; analgesia given at the first reassessment."),
            ("need-more-info", "Waited for the allergy history before the first dose."),
        ],
        Step.Type.DISCHARGE: [
            ("awaiting-care-package", "Medically fit; discharge waited for the reablement team."),
            ("service-not-available", "Medically fit; no rehabilitation bed available yet."),
        ],
    },
    "early": {
        "PREOP": [
            ("indication-order-exists", "Seen in pre-assessment clinic the week before; repeated on the day."),
        ],
        Step.Type.PROCEDURE: [
            ("risk-benefit-ratio", "An earlier slot came free on the list; patient ready and consented."),
        ],
        Step.Type.THERAPY: [
            ("risk-benefit-ratio", "Comfortable and alert soon after surgery; physiotherapy started early."),
        ],
        Step.Type.INVESTIGATION: [
            ("indication-order-exists", "Done at the referring hospital before transfer; repeated here."),
        ],
        Step.Type.MEDICATION: [
            ("indication-order-exists", "First analgesia given by the ambulance crew before arrival."),
        ],
        Step.Type.DISCHARGE: [
            ("risk-benefit-ratio", "Mobile and well on day 1; earlier discharge agreed with the patient."),
            ("prefers-alternative", "Patient preferred to go home early with community physiotherapy."),
        ],
    },
}
# An addition is an activity off the pathway: its explanation fits the activity (ADDITIONS).
ADDITION_EXPLANATIONS = {
    "blood transfusion": ("mitigate-risk-negative-outcome", "Transfused for haemoglobin of 72 after surgery."),
    "cardiology review": ("likely-negative-health-outcomes", "New atrial fibrillation; cardiology reviewed."),
    "wound review": ("mitigate-risk-negative-outcome", "Wound oozing on day 2; reviewed by the surgical team."),
    "delirium screen": ("mitigate-risk-negative-outcome", "Acutely confused overnight; screened for delirium."),
    "return to theatre": ("likely-negative-health-outcomes", "Hemiarthroplasty dislocated; reduced in theatre."),
}
# An omission's explanation fits the step omitted: the texts above are about therapy and
# assessments. The same reason codes, so that the demo draws the same choices.
OMITTED_STEP_RATIONALES = {
    Step.Type.PROCEDURE: {
        "patient-contraindication": "Chest infection on admission: not fit for anaesthetic; surgery postponed.",
        "patient-fears-discomfort": "Patient wanted more time to decide after the risks were discussed.",
        "service-not-available": "Theatre list cancelled: no anaesthetist available.",
        "action-not-priority": "Treated for sepsis first; surgery deferred.",
        "limited-time": "Operation done on another site's list; not recorded here in time.",
    },
    Step.Type.MEDICATION: {
        "patient-contraindication": "Allergy to the first-line drug; alternative given later.",
        "patient-fears-discomfort": "Declined further medication; pain controlled with a nerve block.",
        "service-not-available": "Drug out of stock on the unit.",
        "action-not-priority": "Resuscitation first; the dose was given late and not recorded.",
        "limited-time": "Department at full capacity; the dose was not recorded in time.",
    },
    Step.Type.INVESTIGATION: {
        "patient-contraindication": "Not needed: results from the day before at another hospital.",
        "patient-fears-discomfort": "Declined the blood test after two failed attempts.",
        "service-not-available": "Radiographer not available overnight; imaging the next morning.",
        "action-not-priority": "Resuscitation first; the test was not requested.",
        "limited-time": "Department at full capacity; the request was not made in time.",
    },
    Step.Type.DISCHARGE: {
        "patient-contraindication": "Became unwell again on the day of discharge.",
        "patient-fears-discomfort": "Did not feel ready to go home; stayed another night.",
        "service-not-available": "No rehabilitation bed available yet.",
        "action-not-priority": "Transferred to the medical team before a discharge plan was made.",
        "limited-time": "Discharge summary not completed before the patient left.",
    },
}
ADDITIONS = {
    "TKR": ["Blood transfusion", "Cardiology review", "Wound review"],
    "HIP-FRACTURE": ["Blood transfusion", "Delirium screen", "Cardiology review", "Return to theatre"],
}
# What theatres paid above the standard rate (standard: TKR implant 2,000, pack 300; hip implant 720).
# resource code -> (share of operations, [actual unit prices]). Implants: a supplier substitution or a
# surgeon's choice of a different design; the consumables pack: a price rise nobody explained.
DEARER_ITEMS = {
    "IMPLANT": (0.18, ["2200", "2200", "2350", "2480"]),
    "HIP-IMPLANT": (0.15, ["790", "845", "910"]),
    "CONSUMABLES": (0.12, ["325", "340"]),
}
EXPLAINED_ITEMS = {"IMPLANT", "HIP-IMPLANT"}
# How a dearer implant is explained, if it is: [(share, cause, reason code, rationale)]; the rest stay
# unexplained (nobody told the ward that the price had changed).
SUBSTITUTIONS = [
    (0.45, "system", "service-not-available", "Usual implant out of stock; supplier substituted a dearer one."),
    (0.2, "clinician", "risk-benefit-ratio", "Poor bone quality: the surgeon chose a different implant design."),
]
# pathway -> [(why the patient left the pathway, coded reason)]
EXITS = {
    "TKR": [
        ("Surgery cancelled: new chest pain at admission, referred to cardiology", "patient-contraindication"),
        ("Deteriorated with sepsis after surgery; transferred to the medical team", "action-not-priority"),
    ],
    "HIP-FRACTURE": [
        ("Pathological fracture found; moved to the oncology pathway", "patient-ineligible"),
        ("Deteriorated; transferred to critical care", "action-not-priority"),
    ],
}
DESTINATIONS = ["usual-residence"] * 8 + ["care-home", "rehabilitation"]
# Left unexplained in the demo clinician's inbox, and awaiting the lead's review.
INBOX_LEFT = 6
REVIEW_LEFT = 5
# Reviews what the demo lead documented himself (a lead does not review their own); no password.
COLLEAGUE_LEAD = ("lead-colleague", "Ms Grace Owusu (Clinical Lead, T&O)")


def load(*, units, users, stdout) -> None:
    if Episode.objects.filter(patient_ref__startswith=REF_PREFIX).exists():
        stdout.write("Demo episodes already loaded.")
        return
    versions = {
        v.pathway.code: v
        for v in PathwayVersion.objects.published().filter(pathway__code__in=PLAN).select_related("pathway")
    }
    # Episodes older than VERSION_SWITCH_DAYS follow the version retired since, if any:
    # in-flight episodes keep the version they started on.
    previous = {}
    for v in PathwayVersion.objects.filter(pathway__code__in=PLAN, status=PathwayVersion.Status.RETIRED).order_by(
        "number"
    ):
        previous[v.pathway.code] = v
    missing = sorted(set(PLAN) - set(versions))
    if missing:
        stdout.write(f"Demo episodes skipped: no published pathway {', '.join(missing)}.")
        return
    clinician, lead = users["clinician"], users["lead"]
    now = timezone.now()
    rng = random.Random(SEED)
    seed_base_reasons(ReasonCode)
    reasons = _local_reasons(versions)

    # One transaction: all of the demo or none of it (and one commit, not hundreds).
    with transaction.atomic():
        episode_ids, exits = _write_episodes(rng, versions, previous, units, clinician, lead, now)
        counts = _exit(rng, exits, reasons)
        created = evaluate_episodes(episode_ids, now=now)
        counts += _document(rng, episode_ids, reasons, clinician, lead)
        # Its own random stream: prices added to the demo leave every draw above as it was.
        counts += _dearer_items(random.Random(SEED + 1), episode_ids, reasons)
    stdout.write(
        f"Demo episodes: {len(episode_ids)} on TKR and HIP-FRACTURE, {sum(created.values())} departures detected "
        f"({', '.join(f'{n} {t}' for t, n in sorted(created.items()))}); "
        f"{counts['explained']} explained, {counts['reviewed']} reviewed, {counts['inbox']} left in the inbox; "
        f"{counts['dearer']} items bought dearer than the standard price, {counts['substitutions']} of them "
        "explained as a substitution."
    )


def _local_reasons(versions) -> dict[str, ReasonCode]:
    found = {}
    for code, rows in LOCAL_REASONS.items():
        pathway = versions[code].pathway
        for reason_code, display, cause in rows:
            found[reason_code] = ReasonCode.objects.get_or_create(
                pathway=pathway, code=reason_code, defaults={"display": display, "default_cause": cause}
            )[0]
    for reason in ReasonCode.objects.filter(pathway__isnull=True):
        found[reason.code] = reason
    return found


# --- episodes and events ------------------------------------------------------------


def _start_time(rng: random.Random, elective: bool, now: datetime, *, recent: bool) -> datetime:
    if recent:
        return now - timedelta(hours=rng.randint(6, 40), minutes=rng.randint(0, 59))
    today = timezone.localdate(now)
    while True:
        day = today - timedelta(days=rng.randint(4, DAYS))
        if elective and day.weekday() >= 5:
            continue
        at = time(7, rng.choice([15, 30, 45])) if elective else time(rng.randint(0, 23), rng.randint(0, 59))
        return timezone.make_aware(datetime.combine(day, at))


def _place(rng: random.Random, due_from, due_by, anchor: datetime, outcome: str) -> datetime:
    """A time for a step: inside its window, or just outside it for a departure."""
    start = due_from or anchor
    end = due_by or start + timedelta(hours=2)
    if end <= start:
        end = start + timedelta(minutes=30)
    if outcome == "late":
        return end + timedelta(minutes=rng.randint(60, 36 * 60))
    if outcome == "early":
        return start - timedelta(minutes=rng.randint(60, 24 * 60))
    span = (end - start).total_seconds()
    return start + timedelta(seconds=rng.uniform(0.05, 0.7) * span)


def _write_episodes(rng, versions, previous, units, clinician, lead, now):
    """Episodes and events in bulk; returns their ids and the exits still to record."""
    episodes: list[Episode] = []
    exits: list[tuple[Episode, datetime, str]] = []
    plans: list[tuple[Episode, list[tuple[int | None, str, datetime]]]] = []
    number = 0
    version_ids = [v.pk for v in versions.values()] + [v.pk for v in previous.values()]
    specs_by_version = load_step_specs(version_ids)
    # Expected length of stay: the per-day step's expected count (TKR 3 days, hip fracture 14).
    stay_days = dict(
        Step.objects.filter(version_id__in=version_ids, per_day=True).values_list("version_id", "expected_count")
    )
    switch = now - timedelta(days=VERSION_SWITCH_DAYS)
    exited: set[str] = set()  # each pathway shows at least one exit, whatever today's date does to the draws
    for code, plan in PLAN.items():
        for i in range(plan["count"]):
            number += 1
            on_ward = i < ON_WARD  # the first few are still in hospital: the clinician's active patients
            started = _start_time(rng, plan["elective"], now, recent=on_ward)
            version = previous[code] if code in previous and started < switch else versions[code]
            specs = specs_by_version.get(version.pk, [])
            departs = rng.random() < DEPARTURE_SHARE
            events, ended, status, exit_reason = _journey(
                rng,
                specs,
                code,
                started,
                departs,
                now,
                on_ward=on_ward,
                stay_days=float(stay_days.get(version.pk, 1)),
                force_exit=code not in exited,
            )
            exiting = status == Episode.Status.EXITED
            if exiting:
                exited.add(code)
            if exiting:
                # Written active; the exit goes through the service, which records the
                # exit variance the lead reviews.
                status, exit_at, ended = Episode.Status.ACTIVE, ended, None
            episode = Episode(
                patient_ref=f"{REF_PREFIX}{code[:3]}-{number:04d}",
                version=version,
                org_unit=units[rng.choice(plan["units"])],
                responsible_clinician=clinician if rng.random() < 0.7 else lead,
                started_at=started,
                ended_at=ended,
                status=status,
                discharge_destination=rng.choice(DESTINATIONS) if status == Episode.Status.COMPLETED else "",
                readmitted_30d=(rng.random() < 0.06) if ended and ended < now - timedelta(days=30) else None,
                complication=(rng.random() < 0.08) if ended else None,
                created_at=started,
                updated_at=now,
            )
            episode.full_clean(validate_constraints=False)
            episodes.append(episode)
            plans.append((episode, events))
            if exiting:
                exits.append((episode, exit_at, exit_reason))
    Episode.objects.bulk_create(episodes)
    rows = []
    for episode, events in plans:
        for step_id, activity, at in events:
            rows.append(
                StepEvent(
                    episode=episode,
                    step_id=step_id,
                    activity=activity,
                    occurred_at=at,
                    recorded_at=min(at + timedelta(minutes=rng.randint(2, 90)), now),
                    source=StepEvent.Source.MANUAL if step_id is None else StepEvent.Source.API,
                    external_id="" if step_id is None else f"{episode.patient_ref}-{len(rows):05d}",
                )
            )
    StepEvent.objects.bulk_create(rows)
    audit_record(
        action="demo.load",
        object_type="variances.episode",
        detail={"episodes": len(episodes), "events": len(rows)},
    )
    return [e.pk for e in episodes], exits


def _journey(rng, specs, code, started, departs, now, *, on_ward: bool, stay_days: float, force_exit: bool = False):
    """One episode's events, end and status; departures on at most two steps."""
    planned = [s for s in specs if not s.per_day]
    per_day = [s for s in specs if s.per_day]
    departing: dict[int, str] = {}
    if departs and planned:
        for spec in rng.sample(planned, k=min(len(planned), rng.choice([1, 1, 2]))):
            departing[spec.id] = rng.choice(["late", "late", "late", "early", "missed"])
    events: list[tuple[int | None, str, datetime]] = []
    facts: list[EventFact] = []
    pending = list(planned)
    before_discharge: list = []
    for _ in range(len(planned) + 1):  # anchors first: repeat until every step is placed
        done = {f.step_id for f in facts}
        waiting = {p.id for p in pending}
        for spec in list(pending):
            if spec.anchor_id is not None and spec.anchor_id not in done:
                if spec.anchor_id not in waiting:
                    pending.remove(spec)  # its anchor never happened: neither does it
                continue
            if waiting & set(spec.must_follow):
                continue  # place the steps it must follow first
            pending.remove(spec)
            outcome = departing.get(spec.id, "on-time")
            if outcome == "missed" or (not spec.mandatory and rng.random() < 0.3):
                continue
            if spec.window_min is None and spec.window_max is None:
                before_discharge.append(spec)  # no timing rule: done on the last day (discharge, bone health)
                continue
            first = first_events(specs, facts)
            due_from, due_by = window(spec, started_at=started, first=first)
            after = [first[p].occurred_at for p in spec.must_follow if p in first]
            at = _place(rng, due_from, due_by, started, outcome)
            if after and outcome == "on-time" and at <= max(after):
                at = max(after) + timedelta(minutes=rng.randint(10, 90))
                if due_by is not None and at > due_by:
                    at = max(after) + (due_by - max(after)) / 2
            at = max(at, started - timedelta(days=14))
            facts.append(EventFact(len(facts) + 1, spec.id, "", at))
            events.append((spec.id, "", at))
            if rng.random() < 0.1:  # a repeat (recorded twice, or done again): never a variance
                events.append((spec.id, "", at + timedelta(hours=rng.randint(2, 20))))
    last = max([at for _s, _a, at in events], default=started + timedelta(hours=4))
    if departs and rng.random() < 0.35:
        extra = rng.choice(ADDITIONS[code])
        events.append((None, extra, started + (last - started) * rng.uniform(0.3, 0.9)))
    # Discharged late morning after about the expected stay (longer when things went wrong).
    nights = max(0, round(rng.gauss(stay_days * (1.3 if departs else 1.0), stay_days * 0.25)))
    discharge_day = timezone.localtime(started).date() + timedelta(days=nights)
    ended = max(
        timezone.make_aware(datetime.combine(discharge_day, time(rng.randint(10, 16), rng.randint(0, 59)))),
        last + timedelta(hours=rng.randint(2, 6)),
    )
    minutes_before = sorted((rng.randint(20, 600) for _ in before_discharge), reverse=True)
    for spec, minutes in zip(before_discharge, minutes_before, strict=True):
        events.append((spec.id, "", ended - timedelta(minutes=minutes)))
    status, exit_reason = Episode.Status.COMPLETED, ""
    if departs and not on_ward and (rng.random() < 0.05 or force_exit):
        ended = started + (ended - started) * 0.5
        events = [e for e in events if e[2] <= ended]
        status, exit_reason = Episode.Status.EXITED, rng.choice(EXITS[code])
    for spec in per_day:
        day = started
        while day < ended:
            events.append((spec.id, "", day + timedelta(hours=1)))
            day += timedelta(days=1)
    if on_ward or ended >= now - timedelta(hours=1):
        # Still on the ward: only what has happened so far.
        events = [e for e in events if e[2] < now - timedelta(minutes=30)]
        return events, None, Episode.Status.ACTIVE, ""
    return events, ended, status, exit_reason


# --- documentation ----------------------------------------------------------------


def _exit(rng, exits, reasons) -> Counter:
    for episode, ended_at, (why, code) in exits:
        services.episode_exit(
            episode=episode,
            ended_at=ended_at,
            reason=why,
            reason_code=reasons[code],
            actor=episode.responsible_clinician,
        )
    return Counter(exits=len(exits))


def _document(rng, episode_ids, reasons, clinician, lead) -> Counter:
    counts: Counter = Counter()
    unexplained = list(
        Variance.objects.unexplained()
        .filter(episode_id__in=episode_ids)
        .select_related("episode__version__pathway", "episode__responsible_clinician", "step", "detection__event")
        .order_by("-episode__started_at", "id")
    )
    left = 0
    for variance in unexplained:
        owner = variance.episode.responsible_clinician
        if owner == clinician and left < INBOX_LEFT:
            left += 1  # the newest of the demo clinician's: waiting in her inbox
            continue
        code, rationale = _explanation(rng, variance, reasons)
        services.variance_explain(
            variance=variance,
            cause=reasons[code].default_cause or Variance.Cause.CLINICIAN,
            reason=reasons[code],
            valence=Variance.Valence.NEUTRAL
            if variance.variance_type in ("early", "addition")
            else Variance.Valence.NEGATIVE,
            rationale=rationale if code != "patient-refuses" else "",
            action_taken="Discussed at the morning huddle." if rng.random() < 0.3 else "",
            actor=owner or clinician,
        )
        counts["explained"] += 1
    counts["inbox"] = left
    _review(rng, episode_ids, lead, counts)
    _history_examples(episode_ids, clinician, lead, reasons)
    return counts


def _dearer_items(rng, episode_ids, reasons) -> Counter:
    """Some operations used an implant or pack dearer than the standard rate: a price variance (cash).

    Written on the first event of each operation, quantity as planned and only the price differing,
    so the figure is a pure price variance. Some dearer implants are explained by the clinician as
    a substitution (through the service, so they have their history); the others are not.
    """
    counts: Counter = Counter()
    planned: dict[int, dict[str, PlannedResource]] = {}
    versions = Episode.objects.filter(pk__in=episode_ids).values("version_id")
    for row in PlannedResource.objects.filter(
        step__version_id__in=versions, resource__code__in=DEARER_ITEMS
    ).select_related("resource"):
        planned.setdefault(row.step_id, {})[row.resource.code] = row
    seen: set[tuple[int, int]] = set()
    rows: list[EventQuantity] = []
    explain = []
    events = (
        StepEvent.objects.filter(episode_id__in=episode_ids, step_id__in=planned)
        .select_related("episode__responsible_clinician", "step")
        .order_by("episode__started_at", "episode_id", "occurred_at", "id")
    )
    for event in events:
        if (event.episode_id, event.step_id) in seen:
            continue  # a repeat of the operation: the items were bought once
        seen.add((event.episode_id, event.step_id))
        for code, item in planned[event.step_id].items():
            share, prices = DEARER_ITEMS[code]
            if rng.random() >= share:
                continue
            rows.append(
                EventQuantity(
                    event=event,
                    resource=item.resource,
                    quantity=item.quantity,
                    headcount=item.headcount,
                    unit_cost=Decimal(rng.choice(prices)),
                )
            )
            counts["dearer"] += 1
            if code in EXPLAINED_ITEMS:
                pick = rng.random()
                for chance, cause, reason_code, rationale in SUBSTITUTIONS:
                    if pick < chance:
                        explain.append((event, item.resource, cause, reason_code, rationale))
                        break
                    pick -= chance
    EventQuantity.objects.bulk_create(rows)
    for event, resource, cause, reason_code, rationale in explain:
        services.variance_record(
            episode=event.episode,
            step=event.step,
            resource=resource,
            variance_type=Variance.Type.SUBSTITUTION,
            cause=cause,
            reason=reasons[reason_code],
            valence=Variance.Valence.NEUTRAL,
            rationale=rationale,
            occurred_at=event.occurred_at,
            actor=event.episode.responsible_clinician,
        )
        counts["substitutions"] += 1
    return counts


def _explanation(rng, variance, reasons) -> tuple[str, str]:
    """A reason and rationale that fit the departure's step (or, for an addition, its activity)."""
    pathway_code = variance.episode.version.pathway.code
    local = {code for code, _d, _c in LOCAL_REASONS.get(pathway_code, [])}
    other_local = {code for rows in LOCAL_REASONS.values() for code, _d, _c in rows} - local
    kind, step = variance.variance_type, variance.step
    by_step = STEP_EXPLANATIONS.get(kind, {})
    candidates = EXPLANATIONS.get(kind, [])
    if step is not None:
        candidates = by_step.get(step.code) or by_step.get(step.step_type) or candidates
    options = [(c, r) for c, r in candidates if c not in other_local]
    code, rationale = rng.choice(options or [("limited-time", "Ward pressures on the day.")])
    if kind == "omission" and step is not None:
        rationale = OMITTED_STEP_RATIONALES.get(step.step_type, {}).get(code, rationale)
    event = variance.detection.event if variance.detection_id else None
    if kind == "addition" and event is not None:
        code, rationale = ADDITION_EXPLANATIONS.get(" ".join(event.activity.split()).lower(), (code, rationale))
    return code, rationale


def _colleague_of(lead) -> User:
    """A second clinical lead in the demo lead's unit, for the reviews he may not do himself."""
    username, display_name = COLLEAGUE_LEAD
    colleague, created = User.objects.get_or_create(username=username, defaults={"display_name": display_name})
    if created:
        colleague.set_unusable_password()
        colleague.save(update_fields=["password"])
    for membership in lead.memberships.filter(role=Membership.Role.CLINICAL_LEAD):
        Membership.objects.get_or_create(
            user=colleague, org_unit_id=membership.org_unit_id, role=Membership.Role.CLINICAL_LEAD
        )
    return colleague


def _review(rng, episode_ids, lead, counts) -> None:
    awaiting = Variance.objects.awaiting_review().filter(episode_id__in=episode_ids)
    documented = list(awaiting.select_related("episode", "step", "reason").order_by("-episode__started_at", "id"))
    own = set(awaiting.documented_by(lead).values_list("pk", flat=True))  # on his own patients
    colleague = _colleague_of(lead) if own else None
    waiting = 0
    for variance in documented:
        reviewer = colleague if variance.pk in own else lead
        if reviewer == lead and variance.review_required and waiting < REVIEW_LEFT:
            waiting += 1  # the most recent that must be reviewed: in the lead's queue
            continue
        if not variance.review_required and rng.random() < 0.3:
            continue  # optional reviews: the lead does most
        justified = variance.cause != Variance.Cause.CLINICIAN or rng.random() < 0.6
        services.variance_review(
            variance=variance,
            justified=justified,
            avoidable=variance.cause in (Variance.Cause.SYSTEM, Variance.Cause.CLINICIAN) and rng.random() < 0.7,
            comment="" if justified else "Should have escalated to the on-call consultant; discussed at M&M.",
            actor=reviewer,
        )
        counts["reviewed"] += 1


def _history_examples(episode_ids, clinician, lead, reasons) -> None:
    """One amended and one withdrawn variance, so the history pages have something to show."""
    # What the theatre coordinator can confirm: a late operation, not an exit or a missed physiotherapy session.
    amendable = (
        Variance.objects.filter(
            episode_id__in=episode_ids,
            status=Variance.Status.DOCUMENTED,
            recorded_by=clinician,
            variance_type=Variance.Type.DELAY,
            step__step_type=Step.Type.PROCEDURE,
        )
        .order_by("id")
        .first()
    )
    if amendable is not None:
        services.variance_amend(
            variance=amendable,
            changes={"rationale": (amendable.rationale + " Confirmed with the theatre coordinator.").strip()},
            reason="Added what the theatre coordinator confirmed",
            actor=clinician,
        )
    episode = Episode.objects.filter(pk__in=episode_ids, responsible_clinician=clinician).order_by("started_at").first()
    if episode is not None:
        step = Step.objects.filter(version_id=episode.version_id).order_by("stage__order", "order").first()
        mistaken = services.variance_record(
            episode=episode,
            step=step,
            variance_type=Variance.Type.DELAY,
            cause=Variance.Cause.SYSTEM,
            reason=reasons["service-not-available"],
            valence=Variance.Valence.NEGATIVE,
            rationale="Recorded against the wrong patient.",
            occurred_at=episode.started_at,
            actor=clinician,
        )
        services.variance_withdraw(variance=mistaken, reason="Recorded on the wrong patient", actor=clinician)
