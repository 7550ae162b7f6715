"""The pytest plugin (entry point ``pytest11: ecsd``): the ``ecsd_cloud`` fixture.

One ecsd process per test session (per xdist worker), started the first time a test asks for it;
before each test that uses it, a reset returns it to its first state, so that tests do not see
each other's servers and cost milliseconds each. Settings (``pytest.ini`` / ``pyproject.toml``):

    ecsd_step_delay    seconds per simulated operation (default 0: jobs finish at once)
    ecsd_seed          a seed file (JSON or YAML) applied at start; resets return to it
    ecsd_fault_images  true: the two fault images are in the public catalogue
"""

from __future__ import annotations

import pytest

from ecsd.testing.cloud import EcsdCloud


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("ecsd_step_delay", "ecsd_cloud: seconds per simulated operation", default="0")
    parser.addini("ecsd_seed", "ecsd_cloud: a seed file (JSON or YAML) applied at start", default="")
    parser.addini("ecsd_fault_images", "ecsd_cloud: put the fault images in the catalogue", type="bool",
                  default=False)


@pytest.fixture(scope="session")
def ecsd_cloud_session(request: pytest.FixtureRequest):
    """The session's ecsd (not reset between tests: use ``ecsd_cloud`` in tests)."""
    config = request.config
    seed = config.getini("ecsd_seed") or None
    if seed is not None:
        seed = str(config.rootpath / seed)
    cloud = EcsdCloud(step_delay=float(config.getini("ecsd_step_delay")), seed=seed,
                      fault_images=bool(config.getini("ecsd_fault_images")),
                      extra_env={"ECSD_POWER_SYNC_INTERVAL": "0.5"})
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture
def ecsd_cloud(ecsd_cloud_session: EcsdCloud) -> EcsdCloud:
    """An isolated ecsd with the simulated driver, in its first state. See ``ecsd.testing.EcsdCloud``."""
    ecsd_cloud_session.reset()
    return ecsd_cloud_session
