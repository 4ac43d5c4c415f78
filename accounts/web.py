"""Helpers every app's browser views share."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def form_errors(form, exc: ValidationError) -> None:
    """Show a service's validation errors next to the matching field, else at the top of the form.

    The form keeps what was typed: the view renders it again with these errors.
    """
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)
