"""Unit tests, one folder per package and one file per module: tests/unit/<package>/test_<module>.py; a
package's own `__init__` is tested by test_<package>.py beside its folder. In process: no server process, no
plugin process (the tiny models on disk are allowed: the code under test loads them as it loads any model)."""
