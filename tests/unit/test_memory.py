"""Memory per cached tenant, measured in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from rustok_ref.lab import memory


def test_a_tenant_cache_entry_costs_more_than_a_dict_slot() -> None:
    cache = memory.measure("TenantCache", 20_000)
    plain = memory.measure("dict", 20_000)
    assert cache.tenants == plain.tenants == 20_000
    assert cache.rss_built > cache.rss_start  # the tenants themselves take memory
    # moka's entry, the expiry record and the key's second reference, against a hash slot
    assert cache.container_bytes_per_tenant > plain.container_bytes_per_tenant + 100


def test_an_unknown_container_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rustok_ref.lab.memory", "list", "10"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "container must be one of TenantCache, dict" in done.stderr
