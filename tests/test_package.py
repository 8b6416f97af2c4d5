"""The package's public names: imported when first used, as ``from sklearn_piaa import X``
and ``sklearn_piaa.X`` found them when the package imported them all."""

import subprocess
import sys

import pytest

import sklearn_piaa


def test_every_public_name_resolves_without_importing_torch_first():
    # The package imported torch and scikit-learn (seconds) before any name was used.
    code = """
import sys
import sklearn_piaa
heavy = sorted(m for m in ("torch", "sklearn", "scipy", "pandas") if m in sys.modules)
assert heavy == [], heavy
listed = dir(sklearn_piaa)
assert all(name in listed for name in sklearn_piaa.__all__)
assert sklearn_piaa.datasets.read_ratings  # a submodule, as after the eager import
from sklearn_piaa import MetaAestheticRegressor
from sklearn_piaa._estimator import MetaAestheticRegressor as defined
assert MetaAestheticRegressor is defined is sklearn_piaa.MetaAestheticRegressor
for name in sklearn_piaa.__all__:
    getattr(sklearn_piaa, name)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok"]


def test_every_public_name_is_listed_and_kept_once_found():
    import importlib

    for name in sklearn_piaa.__all__:
        value = getattr(sklearn_piaa, name)
        assert name in dir(sklearn_piaa)
        module = importlib.import_module(sklearn_piaa._SOURCES[name], "sklearn_piaa")
        assert value is getattr(module, name)
        assert vars(sklearn_piaa)[name] is value  # the next look-up is a plain one


def test_an_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="module 'sklearn_piaa' has no attribute 'nope'"):
        sklearn_piaa.nope
    with pytest.raises(ImportError, match="cannot import name 'nope' from 'sklearn_piaa'"):
        from sklearn_piaa import nope  # noqa: F401


def test_star_import_gives_every_public_name():
    namespace = {}
    exec("from sklearn_piaa import *", namespace)
    assert set(sklearn_piaa.__all__) <= set(namespace)


def _lower_bounds(requirements):
    """``{name: version}`` of the ``>=`` bounds in pyproject's requirement strings."""
    import re

    bounds = {}
    for req in requirements:
        found = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", req)
        if found:
            bounds[re.sub(r"[-_.]+", "-", found[1]).lower()] = found[2]
    return bounds


def test_ci_installs_the_declared_minimum_versions():
    # .ci/run's last test run is at these pins: a minimum raised in pyproject.toml but not
    # there (or the reverse) would leave the declared floor untested.
    import pathlib
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.version import Version

    root = pathlib.Path(__file__).resolve().parents[1]
    pins_file = root / ".ci" / "minimum-versions.txt"
    if not pins_file.is_file():
        pytest.skip("not run from a checkout of the repository")
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = _lower_bounds(project["dependencies"] + project["optional-dependencies"]["test"])
    pins = {}
    for line in pins_file.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    # torch and torchvision: the build on CI's disk; ruff: the linter, run at its newest
    untested = {"torch", "torchvision", "ruff"}
    assert set(pins) == set(declared) - untested
    for name, version in pins.items():
        assert Version(version) == Version(declared[name]), name
