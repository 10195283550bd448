"""The Luhn check on payment-card numbers: one copy, standard library only.

Used by PII redaction (``course_lib.data``), by the data generator (``data/generate_greenleaf.py``, which may
import nothing but the standard library and ``course_lib``'s stdlib-only modules) and by the tests.
"""

from __future__ import annotations

MIN_CARD_DIGITS = 12  # the shortest payment-card numbers in use; shorter digit runs are never cards


def luhn_valid(number: str, min_digits: int = MIN_CARD_DIGITS) -> bool:
    """True when the digits of ``number`` (spaces, dashes and other non-digits ignored) pass the Luhn checksum
    that every real payment card number passes (and about 90% of random digit strings fail). Fewer than
    ``min_digits`` digits is never a card: ``False``."""
    digits = [int(c) for c in number if c in "0123456789"]
    if len(digits) < min_digits:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:  # every second digit from the right is doubled; a two-digit result adds its digits
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit that, appended to ``body``, makes a Luhn-valid number (how card numbers are built)."""
    for d in "0123456789":
        if luhn_valid(body + d, min_digits=0):
            return d
    raise AssertionError("unreachable: exactly one check digit always exists")
