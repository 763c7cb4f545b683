"""The API fuzzed from its own OpenAPI document (schemathesis): whatever the parameters, no server error, and
every answer matches its declared status codes and schemas.

Left out: schemathesis' "schema-valid data must be accepted" check. Times and filters are free text whose
grammar no JSON schema states, so a generated ``since=0`` is rightly a 400.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from flowscope.lake import LakeWriter
from flowscope.lake.layout import Lake
from flowscope.web.app import create_app
from flowscope.web.queries import LakeQueries
from helpers import HOUR_NS, flows

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

pytestmark = pytest.mark.slow


def test_the_api_holds_to_its_openapi_document(lake_dir: Path) -> None:
    """Each operation with 40 generated requests (schemathesis' own pytest plugin does not run on this pytest:
    the operations are driven through hypothesis directly)."""
    with LakeWriter(lake_dir) as writer:
        writer.write(flows(500, spacing_ns=HOUR_NS // 20))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(LakeQueries(Lake.at(lake_dir), timeout_s=5)))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        fuzz()
