"""Port discovery: an Attachment resolved against what comports() lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import serial.tools.list_ports
from serial.tools.list_ports_common import ListPortInfo

from daq.exceptions import ConfigError, DeviceUnavailable
from daq.transports import ports
from daq.transports.attachment import Attachment
from daq.transports.ports import SerialPort, by_id_links, list_ports, matches, resolve_port


def info(
    device: str,
    vid: int | None = None,
    pid: int | None = None,
    serial_number: str | None = None,
    location: str | None = None,
    product: str | None = None,
) -> ListPortInfo:
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.serial_number, port.location, port.product = vid, pid, serial_number, location, product
    return port


UNO_A = info("/dev/ttyACM0", 0x2341, 0x0043, "75830333238351A0E1F1", "1-1.2:1.0", "Arduino Uno")
UNO_B = info("/dev/ttyACM1", 0x2341, 0x0043, "85739313137351F02161", "1-1.3:1.0", "Arduino Uno")
CH340 = info("/dev/ttyUSB0", 0x1A86, 0x7523, None, "1-1.4", "USB Serial")
ONBOARD = info("/dev/ttyS0")


@pytest.fixture
def present(monkeypatch: pytest.MonkeyPatch) -> list[ListPortInfo]:
    listed = [UNO_A, UNO_B, CH340, ONBOARD]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: listed)
    monkeypatch.setattr(ports, "BY_ID_DIR", Path("/nonexistent/by-id"))
    return listed


def test_a_given_port_wins_as_written(present: list[ListPortInfo]) -> None:
    link = "/dev/serial/by-id/usb-Arduino_Uno_7583-if00"
    assert resolve_port(Attachment(port=link, usb="2341:0043")) == link


@pytest.mark.usefixtures("present")
@pytest.mark.parametrize(
    ("attachment", "device"),
    [
        (Attachment(usb="1a86:7523"), "/dev/ttyUSB0"),
        (Attachment(usb="1A86:7523"), "/dev/ttyUSB0"),
        (Attachment(usb="2341:0043", serial_number="85739313137351F02161"), "/dev/ttyACM1"),
        (Attachment(serial_number="75830333238351a0e1f1"), "/dev/ttyACM0"),
        (Attachment(usb="2341:0043", location="1-1.3"), "/dev/ttyACM1"),  # the USB port path alone
        (Attachment(location="1-1.2:1.0"), "/dev/ttyACM0"),  # or pyserial's, with the interface
        (Attachment(location="1-1.4"), "/dev/ttyUSB0"),
    ],
)
def test_matches_by_usb_id_serial_number_location(attachment: Attachment, device: str) -> None:
    assert resolve_port(attachment) == device


@pytest.mark.usefixtures("present")
def test_ambiguous_usb_id_says_how_to_tell_them_apart() -> None:
    with pytest.raises(DeviceUnavailable) as caught:
        resolve_port(Attachment(usb="2341:0043"))
    message = str(caught.value)
    assert message.startswith("2 ports match usb=2341:0043: add serial_number or location to tell them apart")
    for text in ("/dev/ttyACM0", "/dev/ttyACM1", "serial_number=75830333238351A0E1F1", "location=1-1.3:1.0"):
        assert text in message


@pytest.mark.usefixtures("present")
def test_no_match_says_what_was_looked_for_and_what_is_present() -> None:
    with pytest.raises(DeviceUnavailable) as caught:
        resolve_port(Attachment(usb="2341:0043", serial_number="NOPE"))
    message = str(caught.value)
    assert "no serial port matches usb=2341:0043, serial_number=NOPE" in message
    assert "/dev/ttyACM0 usb=2341:0043 serial_number=75830333238351A0E1F1" in message
    assert "/dev/ttyUSB0 usb=1a86:7523 location=1-1.4 product='USB Serial'" in message
    assert "daq devices" in message


def test_nothing_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [])
    with pytest.raises(DeviceUnavailable, match=r"no serial port matches usb=0403:6001 .*present: none"):
        resolve_port(Attachment(usb="0403:6001"))


def test_an_attachment_with_nothing_to_look_for_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"`port`.*`usb`"):
        resolve_port(Attachment())


def test_a_port_without_usb_matches_no_usb_attachment() -> None:
    assert not matches(SerialPort("/dev/ttyS0"), Attachment(usb="2341:0043"))
    assert not matches(SerialPort("/dev/ttyS0"), Attachment(serial_number="X"))
    assert not matches(SerialPort("/dev/ttyS0"), Attachment(location="1-1"))


def test_list_ports_carries_by_id_links(
    present: list[ListPortInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ttyACM0"
    target.touch()
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-Arduino_Uno_7583-if00").symlink_to(target)
    assert by_id_links(by_id) == {str(target): str(by_id / "usb-Arduino_Uno_7583-if00")}
    assert by_id_links(tmp_path / "missing") == {}

    listed = list_ports([info(str(target), 0x2341, 0x0043, "7583", "1-1.2:1.0", "Arduino Uno"), ONBOARD])
    assert [p.device for p in listed] == ["/dev/ttyS0", str(target)]  # sorted by path
    assert listed[0] == SerialPort("/dev/ttyS0")
    assert listed[0].usb is None
    monkeypatch.setattr(ports, "BY_ID_DIR", by_id)
    uno = list_ports([info(str(target), 0x2341, 0x0043, "7583", "1-1.2:1.0", "Arduino Uno")])[0]
    assert uno.usb == "2341:0043"
    assert uno.by_id == str(by_id / "usb-Arduino_Uno_7583-if00")
