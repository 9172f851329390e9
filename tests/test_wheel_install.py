"""Issue 14: a plain install reads dials. The wheel built from this tree, installed non-editable in a
fresh virtual environment: `daq profiles list` lists every bundled profile from the installed package
data, and a pty dial runs through `daq run` from that install to a real Mosquitto.

The fresh venv gets dialdaq from the wheel alone (`pip install --no-deps --no-index`); its dependencies
come from the test venv's site-packages, added by a plain path line in a .pth file: Python does not run
the .pth files of a folder added that way, so the test venv's editable hook for dialdaq stays off, and
the test checks that `daq` is imported from the fresh venv. No network beyond building the wheel
(pip fetches the build backend, setuptools, as for any build).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest

from tests.ptydial import PtyDial
from tests.support.procs import REPO, Mosquitto, Sub, clean_env, samples_of, stop_process, wait_for, wait_stopped

pytestmark = pytest.mark.timeout(300)

SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "recordings"
)


def bundled_ids() -> list[str]:
    return sorted(tomllib.loads(p.read_text())["id"] for p in (REPO / "firmware_profiles").glob("*.toml"))


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def installed_env() -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this tree installed (not editable); its bin folder. Built once per
    run: pytest-xdist's workers (scripts/test) share the folder above their own basetemp, the first builds
    there under a lock, the others wait for it and check the same install."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "wheel-install"
    with (shared / "wheel-install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "built").exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker whose build failed half way
            build_venv(root)
            (root / "built").touch()
    env = root / "venv"
    site = Path(run(env / "bin" / "python", "-c", PURELIB, cwd=root).strip())
    where = run(
        env / "bin" / "python",
        "-c",
        "import daq.profiles.loader as m; print(m.__file__); print(m.BUNDLED_DIR)",
        cwd=root,
    )
    for line in where.split():
        assert Path(line).is_relative_to(site), f"daq imported from outside the fresh venv: {where}"
    return env / "bin"


PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def build_venv(root: Path) -> None:
    src = root / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", src, cwd=root)
    (wheel,) = (root / "dist").glob("dialdaq-*.whl")
    env = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", env, cwd=root)
    python = env / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=root)
    site = Path(run(python, "-c", PURELIB, cwd=root).strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "test-venv-dependencies.pth").write_text("".join(f"{d}\n" for d in deps))


def test_profiles_list_shows_every_bundled_profile_from_the_installed_package(venv: Path, tmp_path: Path) -> None:
    out = run(venv / "daq", "profiles", "list", cwd=tmp_path)
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert sorted(rows) == bundled_ids()
    site_files = [row.split()[-1] for row in rows.values()]
    assert all("/site-packages/daq/firmware_profiles/" in f for f in site_files), out


def test_profiles_check_compares_with_the_installed_profiles(venv: Path, tmp_path: Path) -> None:
    pot = (REPO / "firmware_profiles" / "arduino-pot.toml").read_text()
    (tmp_path / "lab.toml").write_text(pot.replace('id = "arduino-pot"', 'id = "lab-pot"'))
    (tmp_path / "clash.toml").write_text(pot)
    assert run(venv / "daq", "profiles", "check", "lab.toml", cwd=tmp_path).strip() == "ok lab.toml (lab-pot)"
    clash = subprocess.run(
        [venv / "daq", "profiles", "check", "clash.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert clash.returncode == 2
    assert "site-packages/daq/firmware_profiles/arduino-pot.toml already" in clash.stderr


def test_the_watch_page_is_installed(venv: Path, tmp_path: Path) -> None:
    code = (
        "from importlib.resources import files\n"
        "for p in (files('daq.subscribers.watch') / 'static').iterdir(): print(p.name)"
    )
    installed = sorted(run(venv / "python", "-c", code, cwd=tmp_path).split())
    assert installed == sorted(p.name for p in (REPO / "daq" / "subscribers" / "watch" / "static").iterdir())


def test_the_example_configs_are_installed(venv: Path, tmp_path: Path) -> None:
    """`daq config example` and `daq config files` from the install: every file of config/, from site-packages."""
    assert run(venv / "daq", "config", "example", cwd=tmp_path) == (REPO / "config" / "daq.example.toml").read_text()
    folder, *listed = run(venv / "daq", "config", "files", cwd=tmp_path).splitlines()
    assert "/site-packages/daq/config_files" in folder
    shipped = sorted(
        p.relative_to(REPO / "config").as_posix()
        for p in (REPO / "config").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    )
    assert [line.strip() for line in listed] == shipped
    assert all((Path(folder) / name).read_bytes() == (REPO / "config" / name).read_bytes() for name in shipped)


def test_a_pty_dial_runs_through_daq_run_from_the_install(venv: Path, tmp_path: Path, mosquitto: Mosquitto) -> None:
    with PtyDial(tmp_path) as dial:
        cfg = tmp_path / "daq.toml"
        cfg.write_text(
            f'[station]\nid = "wheel"\n[broker]\nurl = "{mosquitto.url}"\n'
            f'[[dials]]\nid = "p1"\nprofile = "arduino-pot"\nport = "{dial.path}"\n'
        )
        sub = Sub(mosquitto.port, ["daq/wheel/#"], tmp_path / "sub.jsonl")
        log = (tmp_path / "daq.log").open("ab")
        daemon = subprocess.Popen(
            [str(venv / "daq"), "run", "--config", str(cfg)],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=installed_env(),
            start_new_session=True,
        )
        log.close()
        try:
            wait_for(
                lambda: any(m["topic"].endswith("/meta") and m["payload"]["connected"] for m in sub.messages()),
                timeout=20,
                what="the dial connected",
            )
            lines = [b"%d\r\n" % v for v in range(0, 1000, 10)]
            for line in lines:  # 100 Hz
                dial.write(line)
                time.sleep(0.01)
            # The profile may drop the first line after open (boards that reset on open): all but that one.
            wait_for(lambda: len(samples_of(sub.messages())) >= len(lines) - 1, timeout=20, what="the samples")
        finally:
            code = stop_process(daemon)
            if code == 0:
                wait_stopped(sub, "wheel")
            sub.stop()
    assert code == 0, (tmp_path / "daq.log").read_text()[-3000:]
    raws = [s["raw"] for s in samples_of(sub.messages())]
    assert raws == list(range(0, 1000, 10))[-len(raws) :] and len(raws) >= len(lines) - 1
