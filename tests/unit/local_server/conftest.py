"""The scoring path's fixture (`scorer_of`, over fake engines) for the unit tests of this package."""

from tests.support.fake_engines import scorer_of  # noqa: F401 (a fixture, found by name)
