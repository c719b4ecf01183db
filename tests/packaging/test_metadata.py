"""The package's metadata (pyproject.toml) agrees with the repository and the README.

Read from pyproject.toml itself, not from the installed distribution: an editable
install keeps the metadata of the day it was installed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: The extras a user installs (the rest, "test" and "all", are not features).
FEATURE_EXTRAS = {"imap", "gmail", "oauth", "keyring", "serve", "plot"}


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _names(requirements: list[str]) -> set[str]:
    """The distribution names of requirement strings (``"msal>=1.30"`` → ``"msal"``)."""
    return {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower() for req in requirements}


def test_the_license_file_is_the_mit_text_the_metadata_names() -> None:
    project = _project()
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 popkeep contributors\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text
    # PEP 639: with a license expression, License :: classifiers are superseded
    # (PyPI refuses an upload that has both).
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_the_urls_classifiers_and_keywords_are_there() -> None:
    project = _project()
    assert set(project["urls"]) == {"Homepage", "Documentation", "Changelog", "Issues"}
    assert project["urls"]["Changelog"].endswith("/CHANGELOG.md")
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog\n")
    assert all(url.startswith("https://") for url in project["urls"].values())
    classifiers = project["classifiers"]
    assert "Topic :: Communications :: Email :: Post-Office :: POP3" in classifiers
    assert "Environment :: Console" in classifiers
    assert project["keywords"] and project["authors"]


def test_the_python_classifiers_start_at_requires_python() -> None:
    project = _project()
    versions = sorted(
        (int(c.rsplit(".", 1)[1]), c) for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert project["requires-python"] == f">=3.{versions[0][0]}"
    assert [minor for minor, _ in versions] == list(range(versions[0][0], versions[-1][0] + 1))


def test_the_all_extra_is_every_feature_extra() -> None:
    extras = _project()["optional-dependencies"]
    assert set(extras) == FEATURE_EXTRAS | {"all", "test"}
    (requirement,) = extras["all"]
    named = re.fullmatch(r"popkeep\[([a-z,]+)\]", requirement)
    assert named is not None, requirement
    assert set(named[1].split(",")) == FEATURE_EXTRAS


def test_the_test_extra_holds_every_feature_extras_packages() -> None:
    """CI installs the test extra only: every feature must be testable with it."""
    extras = _project()["optional-dependencies"]
    needed = set().union(*(_names(extras[name]) for name in FEATURE_EXTRAS))
    assert needed <= _names(extras["test"])


def test_the_readme_names_every_extra_and_the_everyday_installs() -> None:
    readme = (ROOT / "README.md").read_text()
    install = readme.split("## Installing", 1)[1].split("\n## ", 1)[0]
    for extra in [*FEATURE_EXTRAS, "all"]:
        assert f"| `{extra}` |" in install, extra
    assert "pipx install 'popkeep[keyring]'" in install
    assert "uv tool install 'popkeep[keyring]'" in install
    # The two fresh-machine commands stay as they are.
    assert "\nscripts/demo\n" in readme and "\nscripts/test\n" in readme
