"""Fixtures of the TensorRT tests: export folders made by hand (export_fixture.py)."""

import pytest

from export_fixture import write_export, write_plan


@pytest.fixture
def planned_export(tmp_path):
    """(export folder, plan path) of a mixed int4/int8/fp16 plan."""
    plan = write_plan(tmp_path / "plan.json")
    return write_export(tmp_path / "export", plan), plan
