"""Providers by name, as `RUSTOK_PAYMENT_PROVIDER` and `RUSTOK_SHIPPING_PROVIDER` name them.

The stand-ins are the only implementations so far; a real provider's adapter joins the
tables here, behind the same ports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce.providers.port import PaymentProvider, ShippingProvider
from rustok_ref.commerce.providers.standin import StandInPayments, StandInShipping

F = TypeVar("F")
Sessions = async_sessionmaker[AsyncSession]
PAYMENT_PROVIDERS: Final[Mapping[str, Callable[[Sessions], PaymentProvider]]] = {
    "standin": StandInPayments,
}
SHIPPING_PROVIDERS: Final[Mapping[str, Callable[[Sessions], ShippingProvider]]] = {
    "standin": StandInShipping,
}


def payment_provider(name: str, sessions: Sessions) -> PaymentProvider:
    """The payment provider called `name`; ValueError for an unknown name."""
    return _pick("payment", PAYMENT_PROVIDERS, name)(sessions)


def shipping_provider(name: str, sessions: Sessions) -> ShippingProvider:
    """The shipping provider called `name`; ValueError for an unknown name."""
    return _pick("shipping", SHIPPING_PROVIDERS, name)(sessions)


def _pick(kind: str, known: Mapping[str, F], name: str) -> F:
    if name not in known:
        raise ValueError(f"unknown {kind} provider {name!r}; known: {', '.join(sorted(known))}")
    return known[name]
