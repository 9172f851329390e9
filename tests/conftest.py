"""What every test gets: its tier marker (the table below), the leak check `verify_cleanup`, an outbox
of its own, and the `mosquitto` fixture; `--hardware` opts in to the tests that need a real dial."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.alone import run_slot
from tests.support.leaks import CleanupWatch
from tests.support.procs import Mosquitto

TIERS = ("unit", "transport", "e2e", "browser")

TIER_OF_MODULE = {
    # unit: fast and self-contained: no broker, no device, no daemon (a short subprocess at most);
    # `scripts/test -m unit` runs them in under 30 s
    "test_contract": "unit",
    "test_decode_edges": "unit",
    "test_decode_garbage": "unit",
    "test_decode_hid_profiles": "unit",
    "test_decode_serial_profiles": "unit",
    "test_export": "unit",
    "test_recording": "unit",
    "test_record_input": "unit",
    "test_record_disk": "unit",
    "test_mediaclock_unit": "unit",
    "test_outbox_disk": "unit",
    "test_ports": "unit",
    "test_profiles_model": "unit",
    "test_timecode": "unit",
    "test_udev_rules": "unit",
    "test_units": "unit",
    "test_gather": "unit",
    "test_cadence": "unit",
    "test_broker_words": "unit",
    "test_event_loop": "unit",
    "test_bench_compare": "unit",
    "test_mqtt_wire_parse": "unit",
    "test_bench_station_cpu": "e2e",
    "test_bench_cold": "e2e",
    "test_bench_subscriber": "e2e",
    "test_bench_recorder": "e2e",
    "test_bench_ts_tail": "unit",
    "test_bench_hot_path": "unit",
    "test_bench_python_floor": "unit",
    "test_watch_unit": "unit",
    "test_watch_door": "unit",
    "test_page_door": "unit",
    "test_hygiene": "unit",
    "test_capture_unit": "unit",
    "test_captures": "unit",
    "test_study_unit": "unit",
    "test_registries": "unit",
    "test_station_parts": "unit",
    "test_hostile_input": "unit",
    # transport: a transport against real pseudo-terminals, or fakes at its device library's boundary
    "test_evdev_transport": "transport",
    "test_hid_transport": "transport",
    "test_hid_reader_process": "transport",
    "test_midi_transport": "transport",
    "test_serial_transport": "transport",
    "test_serial_reader_process": "transport",
    # e2e: real processes working together: the daq CLI and daemon, Mosquitto, mpv, an installed wheel
    "test_bridged_brokers": "e2e",
    "test_analysis": "e2e",  # several sittings exported whole, CLI runs among them: ~13 s
    "test_doctor_listen": "e2e",
    "test_capture_e2e": "e2e",
    "test_outbox_cli": "e2e",
    "test_outbox_e2e": "e2e",
    "test_rate_ws": "e2e",
    "test_sittings_e2e": "e2e",
    "test_broker_refusal": "e2e",
    "test_mqtt_layer": "e2e",
    "test_mqtt_wire": "e2e",
    "test_config_errors": "e2e",
    "test_config_numbers": "e2e",
    "test_input_edges_e2e": "e2e",
    "test_demo": "e2e",
    "test_devices_cli": "e2e",
    "test_doctor": "e2e",
    "test_hostile_e2e": "e2e",
    "test_lsl": "e2e",
    "test_mpv_clock": "e2e",
    "test_nothing_lost": "e2e",
    "test_profiles_cli": "e2e",
    "test_record_e2e": "e2e",
    "test_record_disk_e2e": "e2e",
    "test_record_hostile_e2e": "e2e",
    "test_run_e2e": "e2e",
    "test_security": "e2e",
    "test_serial_e2e": "e2e",
    "test_reader_process_e2e": "e2e",
    "test_session_clock_e2e": "e2e",
    "test_shared_recorders": "e2e",
    "test_terminal_e2e": "e2e",
    "test_timecode_cli": "e2e",
    "test_config_cli": "e2e",
    "test_wheel_install": "e2e",
    # browser: a real headless Chromium
    "test_watch_browser": "browser",
    "test_report_browser": "browser",
    "test_study_browser": "browser",
}
"""Every test module's tier. A new test file goes here, or collection fails. A test marked with a tier
of its own (`@pytest.mark.e2e`) keeps it: that is how a slow test leaves a fast module's tier."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hardware", action="store_true", help="run tests that need a real dial attached")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the tier markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hardware = [item for item in items if item.get_closest_marker("hardware")]
    if not config.getoption("--hardware"):  # not collected at all without a dial: deselected, never skipped
        if hardware:
            config.hook.pytest_deselected(items=hardware)
            items[:] = [item for item in items if not item.get_closest_marker("hardware")]
        hardware = []
    unknown = sorted(
        {item.path.name for item in items if item.path.stem not in TIER_OF_MODULE} - {i.path.name for i in hardware}
    )
    if unknown:
        raise pytest.UsageError(
            f"tests/conftest.py's TIER_OF_MODULE has no tier for {', '.join(unknown)}: add each with one of {TIERS}"
        )
    here = Path(__file__).parent
    gone = sorted(name for name in TIER_OF_MODULE if not (here / f"{name}.py").is_file())
    if gone:
        raise pytest.UsageError(f"tests/conftest.py's TIER_OF_MODULE names test files that are gone: {', '.join(gone)}")
    for item in items:
        if item.get_closest_marker("hardware") is None and not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(getattr(pytest.mark, TIER_OF_MODULE[item.path.stem]))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # in parallel (scripts/test): the slow tiers first, so no
        # 40 s browser test starts last while the other workers idle; the fast ones fill in at the end.
        # Every worker sorts the same way (xdist checks that their collections agree).
        slow_first = TIERS[::-1]
        items.sort(key=lambda item: next((i for i, t in enumerate(slow_first) if item.get_closest_marker(t)), 0))


@pytest.fixture(autouse=True)
def run_alone_if_marked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under xdist, a test marked `alone` runs while no other test does (tests/support/alone.py)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    with run_slot(tmp_path_factory.getbasetemp().parent, request.node.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(autouse=True)
def verify_cleanup() -> Iterator[None]:
    """Fails the test that leaves asyncio tasks or timers, threads or child processes behind
    (tests/support/leaks.py says what counts and how long each may take to end)."""
    watch = CleanupWatch()
    yield
    left = watch.leftovers()
    if left:
        pytest.fail("the test left behind:\n  " + "\n  ".join(left), pytrace=False)


@pytest.fixture(autouse=True)
def own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every daemon a test starts keeps its outbox under the test's tmp_path, never in ~/.local/state:
    no test replays what another left behind."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()
