"""Running the tools as a user does (a subprocess) or in process as their command line
does (through run_cli), and the user-error contract they answer with."""
import os
import subprocess
import sys

from fec.utils.errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# a proxy on a closed local port: any download fails at once, as with no network
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


def run(cmd, tmp_path, env=None):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "torch_home"), **OFFLINE,
                **(env or {})}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID"):
        if var not in (env or {}):
            full_env.pop(var, None)
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)


def tool(name, *args):
    return [sys.executable, os.path.join("tools", name), *args]


def assert_user_error(proc, *words):
    """Exit code 2, one line ``error: ...`` holding ``words``, no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def exit_code(main, argv):
    """A tool's ``main`` run in process through run_cli: its return value, or 2 for a
    user error."""
    try:
        return run_cli(main, argv)
    except SystemExit as e:
        return e.code
