"""Root conftest: session settings only; the plugin lives in conformance.pytest_plugin and the test
tiers in tests/conftest.py."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: two workers per CPU. Live steps spend most of their time waiting for probe
    timeouts (a denied connection is one), so one worker per CPU leaves the CPUs mostly idle.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return 2 * len(os.sched_getaffinity(0))
