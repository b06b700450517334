"""The console script ends without the interpreter's teardown: nothing written may be lost on the way."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .conftest import alive, run_planner, run_planner_tracked


def test_full_json_output_and_exit_0():
    # a cold trace: torch and transformers are loaded when the process ends
    r = run_planner("models", "show", "llama-8b", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["params"] == 8_030_261_248  # issue 2's published count


def test_plan_file_is_complete_and_exit_codes_survive(tmp_path):
    out = tmp_path / "plan.json"
    r = run_planner("solve", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["solver"]["status"] == "OPTIMAL"
    r = run_planner("solve", "--model", "llama-405b", "--topology", "8xh100")  # does not fit in bf16
    assert r.returncode == 2 and "short by" in r.stderr
    r = run_planner("no-such-command")
    assert r.returncode == 1 and "No such command" in r.stderr  # a command line that does not parse is bad input


def test_atexit_handlers_still_run():
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "sys.argv = ['planner', 'models', 'list']\n"
        "from planner.cli import main\n"
        "main()\n"
        "print('not reached')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "llama-70b" in r.stdout and r.stdout.rstrip().endswith("atexit ran") and "not reached" not in r.stdout


def test_validate_through_the_console_script(tmp_path):
    """Spawned ranks are joined before the fast exit: the report is whole and no process is left."""
    plan = tmp_path / "plan.json"
    r = run_planner("solve", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "2", "-o", str(plan))
    assert r.returncode == 0, r.stderr
    r, started = run_planner_tracked("validate", str(plan), "--tokens", "2", "--json", timeout=240)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] and report["world_size"] == sum(s["tp"] for s in json.loads(plan.read_text())["stages"])
    assert len(started) >= report["world_size"]  # the ranks (and spawn's helper) were seen running
    time.sleep(0.5)
    assert not alive(started), f"processes left behind: {alive(started)}"
