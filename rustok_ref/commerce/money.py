"""Money: an amount in integer minor units (cents, pence, yen) and an ISO 4217 currency code.

Never a float: 0.1 + 0.2 is not 0.3 in binary floating point, and the reference's Decimal
totals (reference §6.1) become a JSON number somewhere on their way. An amount is a
non-negative int (not a bool, not a float, not a numeric string) within PostgreSQL's bigint,
and sums and multiples of different currencies are refused, not converted. The code is
checked for shape only (three capital letters), as the event rules check it; the number
of minor units per currency is the caller's business.

Why not py-moneyed (or a similar package): it holds a Decimal amount and currency objects,
while what we store, sum and send is an int of minor units; the checks are a few lines.
Domain code: no I/O framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Self

from rustok_ref.errors import ValidationError
from rustok_ref.events.validation import INT64_MAX

_LETTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


_NOT_MONEY: Final = frozenset({"XXX", "XTS"})  # ISO 4217's "no currency" and "testing"


def is_currency(code: object) -> bool:
    """Three capital ASCII letters (ISO 4217's shape), not one of the codes that price
    nothing."""
    return (
        isinstance(code, str)
        and len(code) == 3
        and set(code) <= _LETTERS
        and code not in _NOT_MONEY
    )


def check_currency(code: object, *, field: str = "currency") -> str:
    if not is_currency(code):
        raise ValidationError(
            f"Invalid value for field '{field}': currency code must be exactly 3 uppercase "
            "letters (ISO 4217)",
            fields={field: ["must be 3 uppercase letters (ISO 4217)"]},
        )
    assert isinstance(code, str)
    return code


def check_count(value: object, *, field: str, minimum: int, maximum: int) -> int:
    """A whole number in `minimum..maximum`: a bool, a float or a numeric string is refused."""
    if type(value) is not int or not minimum <= value <= maximum:
        raise ValidationError(
            f"Field '{field}' value {value!r} is out of valid range ({minimum}..{maximum})",
            fields={field: [f"must be a whole number from {minimum} to {maximum}"]},
        )
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """`Money(1999, "EUR")` is 19.99 EUR."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        check_count(self.amount, field="amount", minimum=0, maximum=INT64_MAX)
        check_currency(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Self:
        return cls(0, currency)

    def __add__(self, other: Money) -> Money:
        self.require_currency(other.currency)
        return Money(self.amount + other.amount, self.currency)

    def times(self, quantity: int) -> Money:
        """The amount of `quantity` items at this price."""
        check_count(quantity, field="quantity", minimum=0, maximum=INT64_MAX)
        return Money(self.amount * quantity, self.currency)

    def require_currency(self, currency: str, *, field: str = "currency") -> None:
        """ValidationError unless `currency` is this amount's currency."""
        if currency != self.currency:
            raise ValidationError(
                f"Currency mismatch: {currency} where {self.currency} is required",
                fields={field: [f"must be {self.currency}, got {currency}"]},
            )

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} (minor units)"
