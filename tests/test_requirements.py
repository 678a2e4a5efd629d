"""tests/requirements.py: a missing requirement skips locally and fails under CI."""

import pytest

from tests import requirements as req


@pytest.fixture
def absent(monkeypatch):
    """A requirement that is never met."""
    monkeypatch.setitem(req.CHECKS, "absent-tool", lambda: "absent-tool not found")
    req.missing.cache_clear()
    yield "absent-tool"
    req.missing.cache_clear()


@pytest.mark.parametrize("ci", ["", "false"])
def test_missing_requirement_skips_outside_ci(absent, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="needs absent-tool: absent-tool not found"):
        req.need(absent)


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_missing_requirement_fails_under_ci(absent, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true and needs absent-tool"):
        req.need(absent)
    with pytest.raises(pytest.fail.Exception):
        req.need_module("a_module_that_does_not_exist_anywhere")


def test_met_requirements_and_modules(monkeypatch):
    monkeypatch.setenv("CI", "true")
    req.need()  # nothing asked: nothing to miss
    assert req.need_module("json").dumps([1]) == "[1]"
    with pytest.raises(KeyError, match="unknown requirement 'riscv-gcc'"):
        req.need("riscv-gcc")


def test_a_broken_package_is_an_error_not_a_missing_requirement(tmp_path, monkeypatch):
    (tmp_path / "broken_pkg_for_test.py").write_text("import a_module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_module_that_does_not_exist"):
        req._module("broken_pkg_for_test")
