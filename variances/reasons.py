"""The base reason catalogue: HL7 CDS Hooks non-adherence reason codes.

Source: the HL7 CDS Hooks code system ``non-adherence-reason-codes`` (trial use),
which groups reasons in six categories, from the AHRQ CDSiC override taxonomy.
Each category is itself a code (for "other reason in this category"); each
reason carries the cause a clinician will most often pick with it
(``default_cause``), pre-filled in the form and always changeable.

"Patient refuses/declines (no context given)" is in the code system but set apart
as not preferred: it is seeded ``discouraged`` so the form asks for more context.

Local codes (a bed not available on Ward 7, a cancelled theatre list) belong to a
pathway and are added in the admin; codes are retired there, never deleted.
"""

SYSTEM = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"

PATIENT, CLINICIAN, SYSTEM_CAUSE, COMMUNITY = "patient", "clinician", "system", "community"

# (category code, category display, category default cause, [(code, display, default cause)])
BASE_REASONS = [
    (
        "cds-not-applicable",
        "Does not apply to this patient",
        PATIENT,
        [
            ("patient-ineligible", "Patient does not meet eligibility for recommended action", PATIENT),
            ("indication-order-exists", "Patient has indication/order for intended action", CLINICIAN),
            ("action-completed", "Recommended action was already completed", CLINICIAN),
            ("action-unsuccessful", "Recommended action was previously unsuccessful", PATIENT),
            (
                "action-performed-no-adverse-effect",
                "Intended action was performed previously without adverse effect",
                CLINICIAN,
            ),
            (
                "action-not-priority",
                "Recommended action is not relevant or a priority in current state of health",
                PATIENT,
            ),
        ],
    ),
    (
        "cds-suboptimal-context",
        "Could not be done at that time or by that person",
        SYSTEM_CAUSE,
        [
            ("limited-time", "Could not address recommended action due to limited time", SYSTEM_CAUSE),
            ("wrong-time-workflow", "Delivered at wrong time in workflow or patient lifecycle", SYSTEM_CAUSE),
            ("inappropriate-recipient", "Delivered to inappropriate recipient/role", SYSTEM_CAUSE),
            (
                "need-more-info",
                "Could not address recommended action due to need for more information/pending results/pending consult",
                SYSTEM_CAUSE,
            ),
        ],
    ),
    (
        "recipient-disagrees-evidence",
        "Disagrees with the recommendation because of the evidence",
        CLINICIAN,
        [
            ("does-not-align-latest-evidence", "Recommended action does not align with the latest evidence", CLINICIAN),
            ("expert-contradicts", "Advice from expert contradicts the recommended action", CLINICIAN),
            ("policy-contradicts", "Institutional policy/guideline contradicts the recommended action", SYSTEM_CAUSE),
            ("recipient-does-not-trust", "Recipient does not agree with or trust the recommended action", CLINICIAN),
        ],
    ),
    (
        "recipient-concerns-outcomes",
        "Concerns about potential health outcomes",
        CLINICIAN,
        [
            ("risk-benefit-ratio", "Recipient assessment of risk/benefit ratio", CLINICIAN),
            ("mitigate-risk-negative-outcome", "Action taken to mitigate risk of negative outcome", CLINICIAN),
            (
                "likely-negative-health-outcomes",
                "Recommended action likely to have negative health outcomes",
                CLINICIAN,
            ),
            ("patient-contraindication", "Patient has contraindication to recommended action", PATIENT),
        ],
    ),
    (
        "does-not-align-preferences",
        "Does not align with the patient's preferences or values",
        PATIENT,
        [
            ("patient-fears-discomfort", "Patient fears discomfort from complying with recommended action", PATIENT),
            (
                "patient-does-not-want-change",
                "Patient does not want to change behavior or believes the change is unnecessary",
                PATIENT,
            ),
            (
                "cultural-religious-reason",
                "Patient has a cultural or religious reason for not following recommended action",
                PATIENT,
            ),
            ("prefers-alternative", "Patient prefers an alternative approach or treatment", PATIENT),
            ("patient-refuses", "Patient refuses/declines (no context given)", PATIENT),
        ],
    ),
    (
        "not-convenient-feasible",
        "Not convenient or feasible",
        SYSTEM_CAUSE,
        [
            ("inadequate-support", "Patient has inadequate caregiver/social support", COMMUNITY),
            ("service-not-available", "Treatment or service is not practically available", SYSTEM_CAUSE),
            (
                "implementation-challenges",
                "Recommended action cannot be implemented due to technology/challenges",
                SYSTEM_CAUSE,
            ),
            ("too-costly-uncovered", "Recommended action is too costly or not covered", SYSTEM_CAUSE),
            (
                "recipient-does-not-understand",
                "Recipient does not understand the recommended action or know how to perform it",
                PATIENT,
            ),
            (
                "comorbidity-disability",
                "Patient has co-morbidity or disability that hinders them from completing recommended action",
                PATIENT,
            ),
        ],
    ),
]

# Allowed, but set apart by the code system as not preferred: ask for context.
DISCOURAGED = {"patient-refuses"}


def base_reason_rows():
    """Every base code as a dict of ReasonCode fields, categories first."""
    for category, category_display, category_cause, children in BASE_REASONS:
        yield {
            "code": category,
            "display": f"{category_display} (other)",
            "category": category,
            "default_cause": category_cause,
            "discouraged": False,
        }
        for code, display, cause in children:
            yield {
                "code": code,
                "display": display,
                "category": category,
                "default_cause": cause,
                "discouraged": code in DISCOURAGED,
            }


def category_labels() -> dict[str, str]:
    return {category: display for category, display, _cause, _children in BASE_REASONS}


def seed_base_reasons(reason_model) -> int:
    """Create any missing base code (idempotent; works with a migration's historical model).

    Existing rows are left alone: an administrator may have retired or re-worded one.
    Returns the number created.
    """
    existing = set(reason_model.objects.filter(pathway__isnull=True).values_list("code", flat=True))
    new = [
        reason_model(system=SYSTEM, pathway=None, retired=False, **row)
        for row in base_reason_rows()
        if row["code"] not in existing
    ]
    reason_model.objects.bulk_create(new)
    return len(new)
