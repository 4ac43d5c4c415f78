"""Patient identifiers kept out of the free text CommonPath stores.

Patients are identified by a pseudonymous reference only (DOMAIN.md section 3): no names,
no NHS numbers. The reference has its own rule (``variances.models.validate_patient_ref``);
this module screens what clinicians type about care (a variance's rationale, a review
comment, an exit reason, a change note...), which reports, exports and the API show later.
It lives in ``accounts``, the bottom layer, so that pathways and variances both use it.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# Ten digits as people write an NHS number: 9434765919, 943 476 5919 or 943-476-5919.
NHS_NUMBER = r"[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}"
# In running text: not part of a longer run of digits (a 12-digit order number is not one).
_NHS_NUMBER_IN_TEXT = re.compile(rf"(?<![0-9])(?:{NHS_NUMBER})(?![0-9])")
# local@domain.tld, the top-level domain in letters: "1g@08.00" (a dose at a time) is not an address.
_EMAIL_IN_TEXT = re.compile(r"[\w.%+-]+@(?:[\w-]+\.)+[A-Za-z]{2,}(?![\w-])")

# The messages never repeat what was found: a refused request's detail reaches logs and the audit trail.
NHS_NUMBER_FOUND = (
    "This text contains what looks like an NHS number (10 digits with a valid check digit). "
    "Patients are identified here by their pseudonymous reference only, which the episode already "
    "carries: remove the number."
)
EMAIL_FOUND = (
    "This text contains what looks like an e-mail address. Patients are identified here by their "
    "pseudonymous reference only, and CommonPath keeps no contact details: remove it, and say who was "
    'contacted by their role (e.g. "e-mailed the GP").'
)


def is_nhs_number(digits: str) -> bool:
    """Whether ten digits carry a valid NHS number check digit (NHS Data Dictionary, Modulus 11).

    The first nine digits are weighted 10 down to 2 and summed; the check digit is 11 minus the
    sum's remainder on division by 11, where 11 reads as 0 and 10 means no NHS number has
    those nine digits. About one ten-digit number in eleven passes by chance.
    """
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def validate_no_patient_identifiers(value: str) -> None:
    """Refuse free text that holds an NHS number or an e-mail address.

    An NHS number counts only with a valid check digit, so that the other ten-digit numbers
    clinical and costing text carries (timestamps, order numbers, sums) pass. Names are not
    looked for: in clinical prose too many ordinary words (Mobility, Hope, Bath) are also
    surnames for a rule to tell them apart; the form's help text asks for none instead.
    """
    if not value:
        return
    for found in _NHS_NUMBER_IN_TEXT.finditer(value):
        if is_nhs_number(re.sub(r"[ -]", "", found.group())):
            raise ValidationError(NHS_NUMBER_FOUND, code="nhs_number")
    if _EMAIL_IN_TEXT.search(value):
        raise ValidationError(EMAIL_FOUND, code="email_address")


def refuse_patient_identifiers(**texts: str) -> None:
    """Screen several texts at once: one ValidationError naming each (by its keyword) that holds an identifier.

    For services whose inputs are named apart from the model field they fill (a review's ``comment``
    is stored as ``review_comment``), so that the form or API shows the error by what was sent.
    """
    errors: dict[str, list[ValidationError]] = {}
    for name, text in texts.items():
        try:
            validate_no_patient_identifiers(text)
        except ValidationError as exc:
            errors[name] = exc.error_list
    if errors:
        raise ValidationError(errors)
