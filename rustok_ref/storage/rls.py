"""Row-level security for a tenant-owned table, as every migration applies it.

One definition, so no migration can enable RLS without FORCE or write a policy that differs
from the others. Migrations call it; keep it stable: a change of policy is a new migration
with a new helper, never an edit here (it would silently rewrite history).
"""

from __future__ import annotations

from alembic import op

from rustok_ref.storage.roles import TENANT_SETTING

TENANT_MATCH = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"
POLICY = "tenant_isolation"


def enable_tenant_rls(table: str, column: str = "tenant_id") -> None:
    """ENABLE and FORCE row-level security with a policy on `app.tenant_id`."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {POLICY} ON {table} USING ({column} = {TENANT_MATCH}) "
        f"WITH CHECK ({column} = {TENANT_MATCH})"
    )


def drop_tenant_policy(table: str) -> None:
    """The downgrade's half: drop the policy (the table's own drop removes the rest)."""
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
