"""`make check`'s dependency audit: every pin of requirements.lock against PyPI's own
vulnerability data, through pip-audit (it reads the lock only; nothing is built or installed).

Fails (exit 1) when any pin has a known vulnerability, naming each with its fix versions.

A pin pip-audit could not look up is never called safe. When some pins could not be looked up,
the run fails. When none could, the vulnerability data itself is out of reach (a network that
reaches PyPI's package index but not its per-release JSON, as on this project's build machines):
the audit says so plainly on its last line and does not fail `make check` for a network it
cannot mend, unless AUDIT_STRICT=1 (set it in any pipeline that must not ship unaudited).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def main() -> int:
    lock = sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"
    run = subprocess.run(  # noqa: S603 (our own venv's pip-audit, our own arguments)
        [
            str(PIP_AUDIT),
            "--require-hashes",
            "--disable-pip",
            "--vulnerability-service",
            "pypi",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "-r",
            lock,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(run.stderr)
        print("pip-audit gave no report", file=sys.stderr)
        return 1
    dependencies = report["dependencies"]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    unaudited = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            name, version = dependency["name"], dependency["version"]
            print(f"VULNERABLE {name} {version}: {vuln['id']} (fixed in {fixes})")
    audited = len(dependencies) - len(unaudited)
    print(f"audit: {audited} of {len(dependencies)} pins checked, {len(vulnerable)} vulnerable")
    if unaudited:
        print(
            f"!! {len(unaudited)} pins could not be looked up in PyPI's vulnerability data, "
            f"e.g. {unaudited[0]['skip_reason']}"
        )
    if vulnerable:
        return 1
    if not unaudited:
        return 0
    if len(unaudited) < len(dependencies) or os.environ.get("AUDIT_STRICT") == "1":
        return 1
    print("!! NOT AUDITED: PyPI's vulnerability data is out of reach from this network")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
