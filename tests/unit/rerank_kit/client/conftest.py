"""The respx router every client test mocks its server with."""

from __future__ import annotations

import pytest
import respx

from tests.support.respx_servers import BASE


@pytest.fixture
def mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router
