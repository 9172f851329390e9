"""`daq doctor`: for each configured dial, is it ready to be read, and if not, what to do.

Checks, per dial: the profile loads; the library its transport needs is installed; the device
is present (the attachment resolves, as the transport would resolve it); for serial dials, that
the port is a tty at all (not /dev/null, not a plain file) and which process holds it
(daq.transports.port_check); its device node is readable and writable by this user (and if not,
who owns it and which udev rule or group fixes it); whether a kernel driver holds it (a
PowerMate held by `powermate` has no hidraw node); for serial dials, whether ModemManager is
running and would probe the port. Nothing is opened for reading and nothing is changed
(`daq doctor --listen`, daq.diagnose.listen, then opens each ready dial and decodes what it sends).

Every check yields a `Finding`; a dial is ready when none of its findings failed. Which checks
run for a dial is its transport kind's `doctor` entry in daq.transports.registry (the built-in
kinds' checks are the check_* functions here); the extras looked for are the kinds' `extra`.
"""

from __future__ import annotations

import grp
import importlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from daq.config import DaqConfig, DialConfig
from daq.diagnose import udev
from daq.exceptions import ConfigError, DeviceUnavailable, FatalError, ProfileError
from daq.profiles.input_codes import parse_event
from daq.profiles.loader import LoadedProfile, ProfileRegistry
from daq.profiles.model import EvdevFraming, Profile, ReportFraming
from daq.seams import resolve
from daq.transports import hid_enum, port_check
from daq.transports.attachment import Attachment
from daq.transports.ports import list_ports, resolve_port
from daq.transports.reader_host import realtime_permitted
from daq.transports.registry import TRANSPORTS

Level = Literal["ok", "warn", "fail", "skip"]

UDEV_RULES_DIRS = [Path("/etc/udev/rules.d"), Path("/run/udev/rules.d"), Path("/usr/lib/udev/rules.d")]
UDEV_FILES = tuple(udev.FILES.values())


def install_rules(profile_dirs: Sequence[str | Path] = ()) -> str:
    """The fix that installs the udev rules, for the bundled profiles and the config's `profile_dirs`."""
    return (
        f"install the udev rules: {udev.install_command('uaccess', profile_dirs)} (a service account: the "
        "variant group, for the members of the group dialdaq: sudo groupadd --system dialdaq; "
        "sudo usermod -aG dialdaq USER), then replug the dial"
    )


@dataclass
class Finding:
    level: Level
    check: str  # library, present, kind, readable, in use, driver, modemmanager, profile; listen: input, readings, ...
    message: str
    fix: str | None = None


@dataclass
class DialReport:
    dial: str
    profile: str | None = None
    transport: str | None = None
    node: str | None = None  # the device node found
    findings: list[Finding] = field(default_factory=list)
    rules_fix: str = field(default_factory=install_rules)  # install_rules(the config's profile_dirs)

    @property
    def ready(self) -> bool:
        return not any(f.level == "fail" for f in self.findings)

    def as_json(self) -> dict[str, object]:
        """What `daq doctor --json` says of the dial (its findings carry the fixes; `rules_fix` is their source)."""
        out = asdict(self)
        del out["rules_fix"]
        return {**out, "ready": self.ready}

    def add(self, level: Level, check: str, message: str, fix: str | None = None) -> Finding:
        finding = Finding(level, check, message, fix)
        self.findings.append(finding)
        return finding


def modemmanager_running() -> bool:
    """Whether a ModemManager process runs (pgrep); False where pgrep is missing."""
    pgrep = shutil.which("pgrep")
    if pgrep is None:
        return False
    done = subprocess.run([pgrep, "-x", "ModemManager"], capture_output=True, timeout=5, check=False)
    return done.returncode == 0


def installed_rules() -> list[Path]:
    return [d / name for d in UDEV_RULES_DIRS for name in UDEV_FILES if (d / name).is_file()]


def rules_cover(usb: str, mm_ignore: bool = False) -> bool:
    """Whether an installed dialdaq rules file names this VID:PID (with ID_MM_DEVICE_IGNORE)."""
    vid, pid = usb.split(":")
    needle = f'ATTRS{{idVendor}}=="{vid}", ATTRS{{idProduct}}=="{pid}"'
    for path in installed_rules():
        for line in path.read_text(errors="replace").splitlines():
            if needle in line and (not mm_ignore or "ID_MM_DEVICE_IGNORE" in line):
                return True
    return False


Check = Callable[[DialReport, Profile, Attachment], None]
"""A transport kind's `doctor` hook: add the dial's findings to the report."""


# ---------------------------------------------------------------- per dial


def diagnose(config: DaqConfig) -> list[DialReport]:
    """One report per configured dial."""
    try:
        registry = ProfileRegistry.load(config.profile_dirs)
    except ProfileError as exc:
        raise ConfigError(config.source_file, "profile_dirs", exc.problem) from None
    return [diagnose_dial(dial, registry, config.profile_dirs) for dial in config.dials]


def diagnose_dial(dial: DialConfig, registry: ProfileRegistry, profile_dirs: Sequence[Path] = ()) -> DialReport:
    report = DialReport(dial.id, rules_fix=install_rules(profile_dirs))
    if dial.simulate is not None:
        report.transport = "simulated"
        report.add("ok", "device", "a simulated dial: nothing to connect")
        return report
    assert dial.profile is not None
    try:
        from daq.station.profiled_dials import resolve_profile

        loaded: LoadedProfile = resolve_profile(registry, dial.profile)
    except ProfileError as exc:
        report.profile = dial.profile
        report.add("fail", "profile", exc.problem, "check the profile id (`daq profiles list`) or file")
        return report
    profile = loaded.profile
    report.profile, report.transport = profile.id, profile.transport
    kind = TRANSPORTS.get(profile.transport)
    if kind is None or kind.doctor is None:
        report.add("skip", "device", f"no checks for the {profile.transport} transport")
        return report
    check: Check = resolve(kind.doctor)
    check(report, profile, dial.attachment)
    return report


def check_serial(report: DialReport, profile: Profile, attachment: Attachment) -> None:
    report.add("ok", "library", "pyserial (installed with dialdaq)")
    try:
        path = resolve_port(attachment)
    except (DeviceUnavailable, ConfigError) as exc:
        report.add("fail", "present", str(exc).removeprefix("<command line>: "), "plug the dial in (a data cable)")
        usb = attachment.usb or next(iter(profile.match.usb), None)
    else:
        real = os.path.realpath(path)
        if not os.path.exists(real):
            report.add("fail", "present", f"serial port {path} not present", "plug the dial in; `daq devices`")
            return
        report.node = real
        report.add("ok", "present", real if real == path else f"{path} -> {real}")
        kind = port_check.serial_node_kind(real)
        if kind.serial is False:
            report.add(
                "fail",
                "kind",
                f"{path} is not a serial port: it is {kind.what}",
                "set the dial's `port` to its serial device (/dev/serial/by-id/..., /dev/ttyACM0); `daq devices`",
            )
            return
        report.add("ok" if kind.serial else "skip", "kind", kind.what)
        _check_access(report, real, "dialout")
        _check_in_use(report, real)
        port = next((p for p in list_ports() if os.path.realpath(p.device) == real), None)
        usb = port.usb if port is not None else attachment.usb
    if sys.platform.startswith("linux"):
        _check_modemmanager(report, usb)


def _check_modemmanager(report: DialReport, usb: str | None) -> None:
    if not modemmanager_running():
        report.add("ok", "modemmanager", "ModemManager is not running")
        return
    if usb and rules_cover(usb, mm_ignore=True):
        report.add("ok", "modemmanager", f"ModemManager runs; the installed udev rules tell it to ignore {usb}")
        return
    report.add(
        "warn",
        "modemmanager",
        "ModemManager is running: it probes a new serial port for seconds after plugging in (sending AT "
        "commands), so the dial's first readings are late or lost",
        report.rules_fix.replace(", then replug the dial", "")
        + " (they set ID_MM_DEVICE_IGNORE), or sudo systemctl disable --now ModemManager on a PC without a modem",
    )


def _check_in_use(report: DialReport, node: str) -> None:
    """Whether another process holds the port (its lock: `daq run` cannot open it) or has it open."""
    found = port_check.holders(node)
    if found is None:
        return
    lockers = [h for h in found if h.locked]
    if lockers:
        report.add(
            "fail",
            "in use",
            f"{node} is in use by {', '.join(h.describe() for h in lockers)}: it holds the port's lock",
            "stop that program (a running `daq run` or `daq doctor --listen`, a serial monitor) first",
        )
    elif found:
        report.add(
            "warn",
            "in use",
            f"{node} is open in {', '.join(h.describe() for h in found)} too: two readers split what the dial sends",
            "close that program (a serial monitor, a terminal program) unless it is the dial's own simulator",
        )
    else:
        report.add("ok", "in use", "no other process has it open")


def check_hid(report: DialReport, profile: Profile, attachment: Attachment) -> None:
    requested = profile.framing.backend if isinstance(profile.framing, ReportFraming) else "auto"
    backend, port = hid_enum.resolve_backend(requested, attachment.port)
    ids = {attachment.vid_pid} if attachment.vid_pid else profile.match.usb_ids()
    try:
        hid_enum.load_backend(backend)
    except (ImportError, OSError) as exc:
        report.add("fail", "library", f"hidapi ({backend} backend) is not usable: {exc}", "pip install hidapi")
        _check_usb_drivers(report, profile, ids, backend, found=False)
        return
    report.add("ok", "library", f"hidapi, {backend} backend")
    try:
        info = hid_enum.find_hid(backend, attachment, port, profile.match.usb_ids(), profile.match.product)
    except DeviceUnavailable as exc:
        report.add("fail", "present", str(exc), "plug the dial in; `daq devices` lists what is attached")
        _check_usb_drivers(report, profile, ids, backend, found=False)
        return
    report.add("ok", "present", info.describe())
    if backend == "hidraw":
        report.node = info.path_text
    elif backend == "libusb":
        usb = next((d for d in hid_enum.usb_devices({(info.vid, info.pid)}) if d.name == info.location), None)
        report.node = usb.node if usb else None
    if report.node:
        _check_access(report, report.node, None)
    _check_usb_drivers(report, profile, {(info.vid, info.pid)}, backend, found=True)


def _check_usb_drivers(
    report: DialReport, profile: Profile, ids: Collection[tuple[int, int]], backend: str, found: bool
) -> None:
    """Which kernel driver holds the device's interfaces (Linux sysfs)."""
    for dev in hid_enum.usb_devices(ids):
        drivers = sorted({d for d in dev.drivers.values() if d})
        held = ", ".join(drivers) or "no driver"
        others = [d for d in drivers if d != "usbhid"]
        if backend == "hidraw" and others:
            evdev = "griffin-powermate-evdev" if dev.usb == "077d:0410" else "an evdev profile"
            report.add(
                "fail",
                "driver",
                f"{dev.usb} ({dev.name}) is claimed by the kernel driver '{others[0]}', not usbhid: there is no "
                "hidraw node for it",
                f"use the evdev profile ({evdev}: the kernel's driver makes an input device of it), or read it "
                "through libusb with port = 'libusb:' in the dial's config (hidapi then detaches the driver)",
            )
        elif backend == "libusb" and drivers:
            report.add(
                "ok",
                "driver",
                f"{dev.usb} ({dev.name}) is held by {held}: hidapi's libusb backend detaches it while dialdaq "
                "reads (the kernel's own input device is gone meanwhile)",
            )
            if dev.node and not found:
                _check_access(report, dev.node, None)
        else:
            report.add("ok", "driver", f"{dev.usb} ({dev.name}): {held}")
        return


def check_evdev(report: DialReport, profile: Profile, attachment: Attachment) -> None:
    from daq.transports import evdev_input

    framing = profile.framing
    assert isinstance(framing, EvdevFraming)
    wanted = {parse_event(e) for e in framing.events.values()}
    ids, products = profile.match.usb_ids(), profile.match.product
    try:
        evdev = evdev_input.import_evdev(f"profile {profile.id}")
    except FatalError as exc:
        report.add("fail", "library", str(exc), "pip install 'dialdaq[evdev]'" if "pip" in str(exc) else None)
        _check_input_nodes(report, attachment, ids, products, only_unreadable=False)
        return
    report.add("ok", "library", f"python-evdev {getattr(evdev, '__version__', '')}".strip())
    if attachment.is_empty and not ids and not products:
        report.add("fail", "present", "the profile matches no device by itself", "give the dial `port` or `usb`")
        return
    try:
        device, _ = evdev_input.find_input(evdev, attachment, wanted, ids, products)
    except DeviceUnavailable as exc:
        _check_input_nodes(report, attachment, ids, products, only_unreadable=True)
        if report.node is None:
            report.add("fail", "present", str(exc), "plug the dial in (or pair it); `daq devices` lists input devices")
        return
    try:
        info = evdev_input.info_of(device)
    finally:
        device.close()
    report.node = info.path
    report.add("ok", "present", info.describe())
    _check_access(report, info.path, "input")
    _check_usb_drivers(report, profile, {(info.vid, info.pid)}, "evdev", found=True)


def _check_input_nodes(
    report: DialReport,
    attachment: Attachment,
    ids: Collection[tuple[int, int]],
    products: Collection[str],
    only_unreadable: bool,
) -> None:
    """Find the dial's input node through sysfs (no library, no open): present? readable?"""
    from daq.transports import evdev_input

    nodes = evdev_input.unreadable_nodes() if only_unreadable else evdev_input.all_nodes()
    for node in nodes:
        sys_dev = hid_enum.SYS / "class" / "input" / os.path.basename(node) / "device"
        name = hid_enum.read_text(sys_dev / "name") or ""
        vid, pid = hid_enum.read_hex(sys_dev / "id" / "vendor"), hid_enum.read_hex(sys_dev / "id" / "product")
        info = evdev_input.InputInfo(node, name, vid or 0, pid or 0)
        if attachment.port and attachment.port.startswith("/"):
            hit = os.path.realpath(attachment.port) == node
        else:
            hit = evdev_input.input_matches(info, attachment, ids, products)
        if hit:
            report.node = node
            report.add("ok", "present", f"{node} ({name!r}, usb={info.usb})")
            _check_access(report, node, "input")
            return
    if not only_unreadable:
        report.add("skip", "present", "no input device of it found in sysfs (is it plugged in or paired?)")


def check_midi(report: DialReport, profile: Profile, attachment: Attachment) -> None:
    from daq.transports import midi

    try:
        mido = midi.import_mido(f"profile {profile.id}")
    except FatalError as exc:
        report.add("fail", "library", str(exc), "pip install 'dialdaq[midi]'")
        return
    report.add("ok", "library", "mido with python-rtmidi")
    wanted = (attachment.port,) if attachment.port else tuple(profile.match.product)
    if not wanted:
        report.add("fail", "present", "the profile names no port", "give the dial `port` = a part of the port's name")
        return
    try:
        name = midi.pick_port(midi.input_names(mido), wanted)
    except DeviceUnavailable as exc:
        report.add(
            "fail",
            "present",
            str(exc),
            "plug the controller in; a service account needs the group audio for /dev/snd/seq",
        )
        return
    report.node = name
    report.add("ok", "present", f"MIDI input port {name!r}")


def _check_access(report: DialReport, node: str, usual_group: str | None) -> None:
    """Readable and writable by this user? If not, who owns the node and what grants access."""
    if hid_enum.can_open(node):
        report.add("ok", "readable", f"{node} is readable and writable by you")
        return
    try:
        st = os.stat(node)
    except OSError as exc:
        report.add("fail", "readable", f"cannot look at {node}: {exc.strerror}")
        return
    group = _group_name(st.st_gid)
    mode = stat.filemode(st.st_mode)
    member = st.st_gid in os.getgroups() or st.st_gid == os.getgid()
    fix = report.rules_fix
    if usual_group and group == usual_group and not member:
        fix = f"sudo usermod -aG {group} $USER, then log out and in again; or {fix}"
    elif member and st.st_mode & stat.S_IRGRP and st.st_mode & stat.S_IWGRP:
        fix = "you are in its group: log out and in again (or reboot) so the membership takes effect"
    report.add(
        "fail",
        "readable",
        f"no permission: {node} is {mode} {_user_name(st.st_uid)}:{group}, and you "
        f"({_user_name(os.getuid())}) {'are' if member else 'are not'} in the group {group}",
        fix,
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# ---------------------------------------------------------------- the machine


GRANT_RTPRIO = (
    "let the user who runs `daq run` have an rtprio limit: a line `<user> - rtprio 10` in "
    "/etc/security/limits.d/dialdaq.conf (then log in again), or `LimitRTPRIO=10` in its systemd unit; "
    '`[station] reader_priority = "normal"` says it is meant'
)


def reader_priority() -> Finding:
    """Whether the reader process (serial and hidraw dials) will get real-time priority here."""
    priority = realtime_permitted()
    if priority is not None:
        ok = f"the reader process of serial and hidraw dials runs real-time (SCHED_FIFO {priority})"
        return Finding("ok", "reader priority", ok)
    message = (
        "the reader process of serial and hidraw dials runs at normal priority: on a busy PC its stamps "
        "may wait a few ms"
    )
    return Finding("warn", "reader priority", message, GRANT_RTPRIO)


def machine(profile_dirs: Sequence[Path] = ()) -> list[Finding]:
    """Facts that concern every dial: installed rules (for the bundled profiles and `profile_dirs`),
    ModemManager, the reader's priority, extras."""
    out: list[Finding] = []
    if sys.platform.startswith("linux"):
        rules = installed_rules()
        if rules:
            out.append(Finding("ok", "udev rules", ", ".join(str(p) for p in rules)))
        else:
            out.append(
                Finding("warn", "udev rules", "dialdaq's udev rules are not installed", install_rules(profile_dirs))
            )
        if modemmanager_running():
            out.append(Finding("warn", "modemmanager", "ModemManager is running (it probes new serial ports)"))
        out.append(reader_priority())
    for extra in (kind.extra for kind in TRANSPORTS.kinds() if kind.extra is not None):
        for module in extra.modules:
            try:
                importlib.import_module(module)
            except ImportError:
                needs = f"pip install 'dialdaq[{extra.name}]' to use such dials"
                out.append(Finding("skip", "extras", f"{module} not installed ({needs})"))
    return out


# ---------------------------------------------------------------- text

MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "--  "}


def render(reports: list[DialReport], facts: list[Finding], configured: bool, listened: bool = True) -> str:
    """The report as text; `listened=False` adds how to check what the dials send as well."""
    out: list[str] = []
    for report in reports:
        what = f"profile {report.profile} ({report.transport})" if report.profile else (report.transport or "")
        out.append(f"dial {report.dial}: {what}")
        out += _lines(report.findings)
        if not report.ready:
            missing = [f.check for f in report.findings if f.level == "fail"]
            out.append(f"  -> not ready ({', '.join(missing)})")
        out.append("")
    if facts:
        out.append("this machine:")
        out += _lines(facts)
        out.append("")
    if not configured:
        out.append(
            "No dials checked: give the station config, daq doctor --config FILE. `daq devices` lists "
            "what is plugged in."
        )
    elif not reports:
        out.append("The config has no dials.")
    else:
        ready = [r for r in reports if r.ready]
        if len(ready) == len(reports):
            out.append(f"All {len(reports)} dials are ready.")
            if not listened and any(r.transport not in (None, "simulated") for r in reports):
                out.append("(That is: found and openable. `daq doctor --listen 5` also decodes what they send.)")
        else:
            waiting = ", ".join(r.dial for r in reports if not r.ready)
            out.append(f"{len(ready)} of {len(reports)} dials ready; not ready: {waiting}. See FAIL lines above.")
    return "\n".join(out)


def _lines(findings: list[Finding]) -> list[str]:
    lines = []
    for f in findings:
        lines.append(f"  {MARK[f.level]}  {f.check:<12} {f.message}")
        if f.fix and f.level in ("fail", "warn"):
            lines.append(f"  {'':4}  {'':<12} fix: {f.fix}")
    return lines
