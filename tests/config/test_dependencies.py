"""requirements.lock against pyproject.toml: every dependency pinned exactly, within its range.

`make install` installs the lock only; a dependency added to or changed in pyproject.toml reaches
the venv after `make lock`. These fail until it has been run (and its output committed).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
# A requirement line of the lock (the lines after it carry its hashes and `# via` notes).
REQUIREMENT_LINE = re.compile(r"^[A-Za-z0-9]")


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(line)
        for line in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def lock_lines() -> list[str]:
    lines = LOCK.read_text().splitlines()
    return [line.rstrip(" \\") for line in lines if REQUIREMENT_LINE.match(line)]


def pins() -> dict[str, list[Version]]:
    """The lock's pins by canonical name: a universal lock may pin a package twice, under
    exclusive markers (one version for older Pythons, say); each must fit pyproject's range."""
    pinned: dict[str, list[Version]] = {}
    for line in lock_lines():
        requirement = Requirement(line)
        (specifier,) = requirement.specifier  # one ==, as the test below checks
        pinned.setdefault(canonicalize_name(requirement.name), []).append(
            Version(specifier.version)
        )
    return pinned


def test_every_line_is_an_exact_pin_with_hashes():
    lines = LOCK.read_text().splitlines()
    requirements = [i for i, line in enumerate(lines) if REQUIREMENT_LINE.match(line)]
    assert len(requirements) > 50, "the lock looks empty"

    not_exact = []
    for line in lock_lines():
        specifiers = list(Requirement(line).specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            not_exact.append(line)
    assert not_exact == [], "every line of requirements.lock must pin one exact version"
    # `pip install --require-hashes` refuses a line without one anyway; this says which.
    unhashed = [lines[i] for i in requirements if "--hash=" not in lines[i + 1]]
    assert unhashed == []


def test_every_declared_dependency_is_pinned_within_its_range():
    pinned = pins()
    missing, outside = [], []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            missing.append(str(requirement))
        else:
            outside += [
                f"{requirement} (locked: {version})"
                for version in pinned[name]
                if not requirement.specifier.contains(version, prereleases=True)
            ]
    assert (missing, outside) == ([], []), (
        f"pyproject.toml and requirements.lock disagree: not pinned {missing}, "
        f"pinned outside the range {outside}. Run `make lock` and commit requirements.lock."
    )
