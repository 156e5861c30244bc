"""Database roles a transaction runs as.

Request transactions run as `rustok_app` (no superuser, no BYPASSRLS), so row-level security
holds even though the pool logs in as the owner. Cross-tenant workers (outbox relay,
projections, saga recovery, the tenant resolver's lookup by slug or host) run as
`rustok_worker`, which has BYPASSRLS and the same table grants. Both are created
idempotently by the first migration: roles are cluster-wide, shared by every run database.
"""

from __future__ import annotations

from enum import StrEnum


class DbRole(StrEnum):
    """The role a unit of work switches to with `set_config('role', ..., true)`."""

    APP = "rustok_app"
    WORKER = "rustok_worker"


TENANT_SETTING = "app.tenant_id"
