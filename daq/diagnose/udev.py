"""udev rules that let dialdaq open the dials (Linux), made from the firmware profiles' [match] usb ids.

Per USB id, the device nodes its profiles read, as their transport kinds' entries in
daq/transports/registry.py say (`udev`): tty (serial), hidraw and the USB device (HID: hidraw
or libusb backend; the kernel's input device too), input event nodes (evdev); kinds with
`udev_bluetooth` are also matched on Bluetooth (HID bus 0005). Kinds with
`udev_modemmanager_ignore` (serial) also get ENV{ID_MM_DEVICE_IGNORE}="1", so ModemManager
does not probe a dial's port for seconds after it is plugged in.
Two variants: uaccess (the user at the desktop) and group (GROUP="dialdaq", for a service).

Made at run time (`daq devices --udev-rules VARIANT`, with a lab's own --dir profiles too), so an
installed package needs no copy of the repository's config/udev, which scripts/gen-udev writes
from the same functions.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from daq.profiles.loader import ProfileRegistry
from daq.transports.registry import TRANSPORTS

FILES = {"uaccess": "70-dialdaq-uaccess.rules", "group": "70-dialdaq-group.rules"}
GRANT = {"uaccess": 'TAG+="uaccess"', "group": 'GROUP="dialdaq", MODE="0660"'}
HEADER = {
    "uaccess": "the user logged in at the desktop gets access (systemd-logind's uaccess tag)",
    "group": 'members of the group "dialdaq" get access: for a service account '
    "(sudo groupadd --system dialdaq; sudo usermod -aG dialdaq USER)",
}


def collect(dirs: list[Path]) -> dict[str, dict[str, set[str]]]:
    """'vvvv:pppp' -> {'transports': {...}, 'profiles': {...}} over every profile with usb ids."""
    ids: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"transports": set(), "profiles": set()})
    for loaded in ProfileRegistry.load(dirs):
        profile = loaded.profile
        for usb in profile.match.usb:
            ids[usb]["transports"].add(profile.transport)
            ids[usb]["profiles"].add(f"{profile.id}: {profile.name}")
    return dict(sorted(ids.items()))


def rules(variant: str, ids: dict[str, dict[str, set[str]]]) -> str:
    grant = GRANT[variant]
    out = [
        f"# dialdaq: access to the dials of the firmware profiles; {HEADER[variant]}.",
        f"# Generated from the profiles' [match] usb ids by `daq devices --udev-rules {variant}`: do not",
        "# edit, generate it again. Install: `daq doctor` says how. Use this file or the other variant, not both.",
        "",
        'ACTION=="remove", GOTO="dialdaq_end"',
    ]
    for usb, facts in ids.items():
        vid, pid = usb.split(":")
        usb_attrs = f'ATTRS{{idVendor}}=="{vid}", ATTRS{{idProduct}}=="{pid}"'
        kinds = [kind for kind in TRANSPORTS.kinds() if kind.name in facts["transports"]]
        out += ["", *(f"# {line}" for line in sorted(facts["profiles"]))]
        subsystems = sorted({s for kind in kinds for s in kind.udev})
        if any(kind.udev_modemmanager_ignore for kind in kinds):
            out.append(f'{usb_attrs}, ENV{{ID_MM_DEVICE_IGNORE}}="1"')
        for subsystem in subsystems:
            if subsystem == "usb":
                device = f'ATTR{{idVendor}}=="{vid}", ATTR{{idProduct}}=="{pid}"'
                match = f'SUBSYSTEM=="usb", ENV{{DEVTYPE}}=="usb_device", {device}'
            elif subsystem == "input":
                match = f'SUBSYSTEM=="input", KERNEL=="event*", {usb_attrs}'
            else:
                match = f'SUBSYSTEM=="{subsystem}", {usb_attrs}'
            out.append(f"{match}, {grant}")
        if any(kind.udev_bluetooth for kind in kinds):  # the same device over Bluetooth: HID bus 0005
            bt = f'KERNELS=="0005:{vid.upper()}:{pid.upper()}.*"'
            for subsystem in ("hidraw", "input"):
                kernel = ', KERNEL=="event*"' if subsystem == "input" else ""
                out.append(f'SUBSYSTEM=="{subsystem}"{kernel}, {bt}, {grant}')
    out += ["", 'LABEL="dialdaq_end"', ""]
    return "\n".join(out)


def install_command(variant: str = "uaccess", dirs: Sequence[str | Path] = ()) -> str:
    """The shell line that installs `variant`'s rules from this installation (and the lab's
    profile folders `dirs`, the config's profile_dirs) and reloads udev."""
    name = FILES[variant]
    also = "".join(f" --dir {shlex.quote(str(d))}" for d in dirs)
    return (  # to a file first: a pipe into `sudo tee` would install an empty file if daq failed
        f"daq devices --udev-rules {variant}{also} > /tmp/{name} && "
        f"sudo install -m 0644 /tmp/{name} /etc/udev/rules.d/ && sudo udevadm control --reload && sudo udevadm trigger"
    )
