"""Payment and shipping providers: the ports, the stand-ins, and the choice by name."""

from rustok_ref.commerce.providers.port import (
    Authorisation,
    Booking,
    Capture,
    PaymentProvider,
    ProviderRejectedError,
    ProviderUnavailableError,
    Refund,
    ShippingProvider,
)
from rustok_ref.commerce.providers.registry import (
    PAYMENT_PROVIDERS,
    SHIPPING_PROVIDERS,
    payment_provider,
    shipping_provider,
)
from rustok_ref.commerce.providers.standin import (
    Fault,
    Operation,
    StandInFaults,
    StandInPayments,
    StandInShipping,
)

__all__ = [
    "PAYMENT_PROVIDERS",
    "SHIPPING_PROVIDERS",
    "Authorisation",
    "Booking",
    "Capture",
    "Fault",
    "Operation",
    "PaymentProvider",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "Refund",
    "ShippingProvider",
    "StandInFaults",
    "StandInPayments",
    "StandInShipping",
    "payment_provider",
    "shipping_provider",
]
