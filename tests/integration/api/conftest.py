"""One API server per test module, over the session's namespace, and two tenants."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_support import ApiServer, TenantKeys, make_tenant, run_server

from rustok_ref.config import Settings


@pytest.fixture(scope="module")
def api_server(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    with run_server(app_settings, tmp_path_factory.mktemp("api")) as server:
        yield server


@pytest.fixture(scope="module")
def tenant_a(app_settings: Settings) -> TenantKeys:
    return make_tenant(app_settings, "Tenant A")


@pytest.fixture(scope="module")
def tenant_b(app_settings: Settings) -> TenantKeys:
    return make_tenant(app_settings, "Tenant B")
