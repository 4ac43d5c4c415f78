"""Free text about care holds no NHS numbers or e-mail addresses (accounts/privacy.py)."""

import re

import pytest
from django.core.exceptions import ValidationError

from accounts.privacy import (
    EMAIL_FOUND,
    NHS_NUMBER_FOUND,
    is_nhs_number,
    refuse_patient_identifiers,
    validate_no_patient_identifiers,
)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Mrs Smith NHS 943 476 5919 refused surgery", "943 476 5919"),
        ("NHS no. 9434765919.", "9434765919"),
        ("Booked under 401-023-2137 by mistake", "401-023-2137"),
    ],
)
def test_it_refuses_a_valid_nhs_number_however_it_is_spaced_without_repeating_it(text, number):
    with pytest.raises(ValidationError) as raised:
        validate_no_patient_identifiers(text)

    assert raised.value.messages == [NHS_NUMBER_FOUND]
    assert raised.value.error_list[0].code == "nhs_number"
    assert not re.search(r"[0-9]{3}", NHS_NUMBER_FOUND)  # the message never echoes what it found
    assert number[-4:] not in str(raised.value)


@pytest.mark.parametrize(
    "text",
    [
        "9434765910",  # the number above with a wrong check digit
        "943 476 5918",
        "Ref 1234567890",  # 11 - remainder is 10: no NHS number starts 123456789
        "Seen at 1740902400 by the monitor",  # a Unix timestamp
        "Order 12943 476 5919",  # part of a longer run of digits
    ],
)
def test_it_accepts_ten_digits_that_fail_the_check_digit(text):
    validate_no_patient_identifiers(text)


def test_the_check_digit_follows_modulus_11():
    assert is_nhs_number("9434765919")
    assert not any(is_nhs_number(f"123456789{last}") for last in range(10))  # check digit 10: invalid
    # Weighted sum 1x10 + 1x9 = 19, remainder 8: check digit 11 - 8 = 3.
    assert is_nhs_number("1100000003")
    # Weighted sum 1x3 + 4x2 = 11, remainder 0: check digit 11 - 0 = 11, which reads as 0.
    assert is_nhs_number("0000000140")
    assert not is_nhs_number("943476591")  # nine digits


@pytest.mark.parametrize(
    "text", ["Daughter (jane.doe@example.com) asked to be called", "Sent to GP.Surgery@nhs.net today"]
)
def test_it_refuses_an_email_address_and_says_what_to_write_instead(text):
    with pytest.raises(ValidationError) as raised:
        validate_no_patient_identifiers(text)

    assert raised.value.messages == [EMAIL_FOUND]
    assert '"e-mailed the GP"' in EMAIL_FOUND
    assert "@" not in EMAIL_FOUND


@pytest.mark.parametrize(
    "text",
    [
        "Hb 95 g/L at 14:30, 2 units",
        "Paracetamol 1g@08.00 and again @ 14.00",
        "BP 145/90, HR 110; 2 x 500 ml bolus; cost £4,167.13",
        "Seen by Mr Bath: mobility better, walked 20 m with Hope's frame",  # names are not looked for
        "",
    ],
)
def test_it_accepts_clinical_text_with_numbers(text):
    validate_no_patient_identifiers(text)


def test_several_texts_are_screened_at_once_each_named_by_its_keyword():
    with pytest.raises(ValidationError) as raised:
        refuse_patient_identifiers(comment="NHS 943 476 5919", reason="Fine", note="j@example.org")

    assert raised.value.message_dict == {"comment": [NHS_NUMBER_FOUND], "note": [EMAIL_FOUND]}
