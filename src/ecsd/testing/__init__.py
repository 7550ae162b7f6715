"""ecsd inside a test suite: ``EcsdCloud`` (one isolated ecsd process and its emulator controls) and
the pytest plugin that hands it to tests as the ``ecsd_cloud`` fixture (docs/testing-with-ecsd.md)."""

from ecsd.testing.cloud import EcsdCloud, EcsdError

__all__ = ["EcsdCloud", "EcsdError"]
