"""Every state machine file passes asl-validator (npm, pinned by tools/asl/package-lock.json) and kefu's own rules."""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib import resources
from local.bootstrap import STEPFUNCTIONS_DIR, render_definition, substitutions

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "asl"
VALIDATOR = TOOLS / "node_modules" / ".bin" / "asl-validator"
INSTALL_LOCK = Path(tempfile.gettempdir()) / f"kefu-asl-{hashlib.sha256(str(TOOLS).encode()).hexdigest()[:12]}.lock"
FILES = sorted(STEPFUNCTIONS_DIR.glob("*.asl.json"))
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
pytestmark = pytest.mark.xdist_group("asl-validator")  # mostly one worker; the install lock covers the rest


class _FakeAws:
    region, account_id = "us-east-1", "123456789012"


def _values() -> dict[str, str]:
    topics = {name: f"arn:aws:sns:us-east-1:123456789012:{name}" for name in resources.TOPICS}
    return substitutions(_FakeAws(), resources.TABLE_NAME, topics)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def validator() -> Path:
    """Installs asl-validator from the committed lock file (`npm ci`) unless it is already there.

    Under a file lock: xdist may put these tests on both workers, and two `npm ci` into one folder collide.
    """
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not VALIDATOR.exists():
            npm = shutil.which("npm")
            assert npm, "npm is needed to validate the state machines (make test installs asl-validator with it)"
            command = [npm, "ci", "--prefix", str(TOOLS), "--no-audit", "--no-fund", "--loglevel=error"]
            subprocess.run(command, check=True, timeout=300)
    return VALIDATOR


def _validate(validator: Path, definition: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(validator), "--json-definition", definition], capture_output=True, text=True, timeout=60, check=False
    )


def test_every_machine_file_is_catalogued() -> None:
    assert FILES, "no state machine files"
    assert sorted(resources.STATE_MACHINES.values()) == sorted(f.name for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_asl_validator_accepts_the_file_and_its_rendered_definition(validator: Path, path: Path) -> None:
    for definition in (path.read_text(encoding="utf-8"), render_definition(path, _values())):
        result = _validate(validator, definition)
        assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_machine(validator: Path) -> None:
    broken = {"StartAt": "Nowhere", "States": {"Done": {"Type": "Succeed"}}}
    assert _validate(validator, json.dumps(broken)).returncode != 0


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(definition["States"])


def _targets(state: dict[str, Any]) -> list[str]:
    found = [state["Next"]] if "Next" in state else []
    found += [c["Next"] for c in state.get("Choices", [])]
    found += [c["Next"] for c in state.get("Catch", [])]
    if "Default" in state:
        found.append(state["Default"])
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_kefu_rules_every_task_retries_and_catches_and_every_state_is_reachable(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert set(PLACEHOLDER.findall(text)) <= set(_values()), "a placeholder bootstrap/infra does not fill"
    rendered = json.loads(render_definition(path, _values()))
    assert not PLACEHOLDER.findall(json.dumps(rendered))
    states = _states(rendered)
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Resource"].startswith("arn:aws:states:::"), f"{name}: only service integrations"
            assert state.get("Retry"), f"{name} has no Retry"
            assert state.get("Catch"), f"{name} catches nothing"
        for target in _targets(state):
            assert target in states, f"{name} → {target} does not exist"
    seen, todo = set(), [rendered["StartAt"]]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_targets(states[current]))
    assert seen == set(states), f"unreachable: {set(states) - seen}"
