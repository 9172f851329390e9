"""The profile format: what it accepts, and that every refusal names the file, the key and the fix."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from daq.exceptions import ProfileError
from daq.profiles.loader import BUNDLED_DIR, LoadedProfile, ProfileRegistry, load_profile, profile_from_dict
from daq.profiles.model import BinaryFraming, LineFraming, Profile

SERIAL_IDS = {"arduino-pot", "arduino-encoder", "dialdaq-frame-v1", "teensy-fast"}
INPUT_IDS = {
    "behringer-xtouch-mini",
    "contour-shuttlepro-v2",
    "contour-shuttlexpress",
    "elgato-streamdeck-plus",
    "generic-joystick-axis",
    "griffin-powermate-evdev",
    "griffin-powermate-hid",
    "korg-nanokontrol2",
    "microsoft-surface-dial",
}
BUNDLED_IDS = SERIAL_IDS | INPUT_IDS

LINE: dict[str, Any] = {
    "spec": 1,
    "id": "lab-pot",
    "name": "Lab pot",
    "transport": "serial",
    "source": "a test",
    "serial": {"baud": 9600},
    "framing": {"kind": "line", "pattern": "(?P<position>[0-9]+)"},
    "channels": {"position": {"kind": "absolute", "range": [0, 1023]}},
}

BINARY: dict[str, Any] = {
    "spec": 1,
    "id": "lab-frame",
    "name": "Lab frame",
    "transport": "serial",
    "source": "a test",
    "serial": {"baud": 115200},
    "framing": {"kind": "binary", "sync": "AA 55", "length": 5, "checksum": {"kind": "sum8"}},
    "fields": {"position": {"offset": 2, "type": "uint16le"}},
    "channels": {"position": {"kind": "absolute"}},
}

REPORT: dict[str, Any] = {
    "spec": 1,
    "id": "lab-hid",
    "name": "Lab HID",
    "transport": "hid",
    "source": "a test",
    "framing": {"kind": "report"},
    "fields": {"jog": {"offset": 1}, "keys": {"offset": 3, "type": "uint16le"}},
    "channels": {"jog": {"kind": "counter"}},
    "buttons": {"b1": {"field": "keys", "bit": 0}},
}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `base` with dotted keys set (value None deletes the key)."""
    data = copy.deepcopy(base)
    for dotted_key, value in changes.items():
        *parents, last = dotted_key.split("__")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def refused(data: dict[str, Any]) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        profile_from_dict(data, "lab.toml")
    assert info.value.file == "lab.toml"
    return info.value


# ---------------------------------------------------------------- bundled


def test_bundled_profiles_load_and_are_unique() -> None:
    registry = ProfileRegistry.load()
    assert {p.id for p in registry.all()} == BUNDLED_IDS
    for loaded in registry:
        assert loaded.path is not None
        assert loaded.path.parent == BUNDLED_DIR
        assert loaded.profile.source
        assert loaded.profile.default_channel in loaded.profile.channels


def test_bundled_profiles_validate_against_the_json_schema() -> None:
    schema = Profile.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)  # checked once above, not again per profile
    for path in sorted(BUNDLED_DIR.glob("*.toml")):
        validator.validate(tomllib.loads(path.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**LINE, "colour": "red"})


def test_every_model_is_described_for_the_schema() -> None:
    schema = Profile.model_json_schema()
    models = [schema, *schema["$defs"].values()]
    for model in models:
        if model.get("title") == "SerialSettings":
            continue  # daq.profiles.serial_settings, described where it is defined
        assert model.get("description"), model.get("title")
        for name, prop in model.get("properties", {}).items():
            assert prop.get("description"), f"{model.get('title')}.{name}"


def test_load_profile_remembers_its_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        'spec = 1\nid = "lab"\nname = "Lab"\ntransport = "serial"\nsource = "test"\n'
        "[serial]\nbaud = 9600\n"
        "[framing]\nkind = \"line\"\npattern = '(?P<v>[0-9]+)'\n"
        '[channels.v]\nkind = "absolute"\n'
    )
    loaded = load_profile(path)
    assert isinstance(loaded, LoadedProfile)
    assert loaded.path == path
    assert loaded.id == "lab"
    assert str(path) in loaded.describe()


# ---------------------------------------------------------------- spec version


def test_missing_spec_is_refused() -> None:
    err = refused(changed(LINE, spec=None))
    assert err.key == "spec"
    assert "spec = 1" in err.problem


def test_newer_spec_asks_for_an_upgrade_before_looking_at_other_keys() -> None:
    err = refused(changed(LINE, spec=2, future_key="x"))
    assert err.key == "spec"
    assert err.problem == "this profile needs dialdaq profile spec 2; this dialdaq reads 1: upgrade dialdaq"


@pytest.mark.parametrize("spec", [0, "1", True, 1.0])
def test_odd_spec_values_are_refused(spec: object) -> None:
    assert refused(changed(LINE, spec=spec)).key == "spec"


# ---------------------------------------------------------------- keys named


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        (changed(LINE, colour="red"), "colour", "unknown key"),
        (changed(LINE, framing__colour="red"), "framing.colour", "unknown key"),
        (changed(LINE, channels__position__colour="red"), "channels.position.colour", "unknown key"),
        (changed(LINE, id="lab pot"), "id", "pattern"),
        (changed(LINE, name=None), "name", "missing"),
        (changed(LINE, transport="bluetooth"), "transport", "serial"),
        (changed(LINE, framing__pattern="(?P<position>[0-9]+"), "framing.pattern", "regular expression"),
        (changed(LINE, framing__ignore=["ok", "(unclosed"]), "framing.ignore[1]", "regular expression"),
        (changed(LINE, framing__pattern="[0-9]+"), "framing.pattern", "named group"),
        (changed(LINE, framing__pattern=None), "framing.pattern", "delimiter"),
        (changed(LINE, framing__delimiter=","), "framing.delimiter", "not both"),
        (changed(LINE, framing__kind=None), "framing.kind", "missing"),
        (changed(LINE, framing__kind="morse"), "framing.kind", "morse"),
        (changed(LINE, match={"usb": ["2341:0043", "2341-43"]}), "match.usb[1]", "four hex digits"),
        (changed(LINE, serial=None), "serial", "[serial]"),
        (changed(LINE, serial__baud=0), "serial.baud", "greater than 0"),
        (changed(LINE, channels={}), "channels", "at least 1"),
        (changed(LINE, channels__position__field="pos"), "channels.position.field", "'pos'"),
        (changed(LINE, channels__position__kind="relative"), "channels.position.range", "absolute"),
        (changed(LINE, channels__position__range=[10, 0]), "channels.position.range", "min < max"),
        (changed(LINE, channels__position__wrap=256), "channels.position.wrap", "counter"),
        (
            changed(
                LINE,
                channels__pos2={"kind": "absolute", "field": "position", "default": True},
                channels__position__default=True,
            ),
            "channels.pos2.default",
            "default already",
        ),
        (changed(LINE, buttons={"position": {}}), "buttons.position", "channel has this name"),
        (changed(LINE, buttons={"b": {}}), "buttons.b.field", "no field 'b'"),
        (changed(LINE, fields={"x": {"offset": 0}}), "fields", "line framing"),
        (changed(BINARY, fields__position__offset=4), "fields.position.offset", "5-byte frame"),
        (changed(BINARY, fields__position__offset=3), "fields.position.offset", "overlaps the checksum at byte 4"),
        (changed(BINARY, fields__position__type="uint24le"), "fields.position.type", "uint16le"),
        (
            changed(BINARY, fields__position__bit=12, fields__position__bits=8),
            "fields.position.bit",
            "does not fit",
        ),
        (changed(BINARY, framing__sync="AA 5"), "framing.sync", "hex"),
        (changed(BINARY, framing__length_field={"offset": 2}), "framing.length", "either"),
        (changed(BINARY, framing__length=None), "framing.length", "either"),
        (
            changed(BINARY, framing__checksum={"kind": "xor8", "offset": 7}),
            "framing.checksum.offset",
            "outside",
        ),
        (
            changed(BINARY, framing__checksum={"kind": "xor8", "covers": [3, 9]}),
            "framing.checksum.covers",
            "within",
        ),
        (changed(BINARY, framing__checksum={"kind": "none", "offset": 1}), "framing.checksum.kind", "'none'"),
        (changed(BINARY, channels__position__number="decimal"), "channels.position.number", "integers"),
        (changed(BINARY, transport="hid", serial=None), "framing.kind", "hid cannot carry"),
        (changed(REPORT, serial={"baud": 9600}), "serial", "only serial profiles"),
        (changed(REPORT, framing__report_id=300), "framing.report_id", "255"),
        (
            changed(REPORT, fields=[{"name": "jog", "offset": 1}, {"name": "jog", "offset": 2}]),
            "fields[1].name",
            "twice",
        ),
        (changed(REPORT, fields=[{"offset": 1}]), "fields[0]", "needs a name"),
        (changed(REPORT, transport="evdev"), "framing.kind", "use one of: evdev"),
    ],
)
def test_refusals_name_the_key(data: dict[str, Any], key: str, words: str) -> None:
    err = refused(data)
    assert err.key == key, str(err)
    assert words.lower() in err.problem.lower(), str(err)
    assert str(err).startswith(f"lab.toml: {key}: ")


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('spec = 1\nid = "x"\nname = "unterminated\n')
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.key == "line 3"
    assert str(path) in str(info.value)


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such file"):
        load_profile(tmp_path / "nope.toml")


# ---------------------------------------------------------------- accepted forms


def test_fields_as_an_array_of_tables() -> None:
    data = changed(REPORT, fields=[{"name": "jog", "offset": 1}, {"name": "keys", "offset": 3, "type": "uint16le"}])
    profile = profile_from_dict(data)
    assert profile.fields["keys"].offset == 3
    assert profile.fields["jog"].width == 8


def test_defaults_and_normalisation() -> None:
    profile = profile_from_dict(changed(BINARY, framing__sync="0xaa55", match={"usb": ["2341:ABCD"]}))
    assert isinstance(profile.framing, BinaryFraming)
    assert profile.framing.sync == "AA 55"
    assert profile.framing.sync_bytes == b"\xaa\x55"
    assert profile.framing.checksum_offset == -1
    assert profile.framing.checksum_covers == (2, -1)
    assert profile.match.usb == ("2341:abcd",)
    assert profile.match.usb_ids() == {(0x2341, 0xABCD)}

    line = profile_from_dict(LINE)
    assert isinstance(line.framing, LineFraming)
    # Issue 14: a line profile reads every line unless it says its board resets on open.
    assert (line.framing.terminator, line.framing.max_length, line.framing.discard_first_line) == (
        "\n",
        256,
        False,
    )
    assert line.default_channel == "position"


def test_default_channel_is_the_marked_one_else_the_first() -> None:
    data = changed(REPORT, fields__ring={"offset": 0, "type": "int8"}, channels__ring={"kind": "absolute"})
    assert profile_from_dict(data).default_channel == "jog"
    data["channels"]["ring"]["default"] = True
    assert profile_from_dict(data).default_channel == "ring"


def test_delimiter_columns() -> None:
    data = changed(LINE, framing={"kind": "line", "delimiter": ",", "fields": {"position": 2}})
    profile = profile_from_dict(data)
    assert isinstance(profile.framing, LineFraming)
    assert profile.framing.field_names() == {"position"}
    assert refused(changed(data, framing__fields=None)).key == "framing.fields"


def test_profiles_are_frozen() -> None:
    profile = profile_from_dict(LINE)
    with pytest.raises(ValueError, match="frozen"):
        profile.id = "other"


# ---------------------------------------------------------------- registry


def _write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    """Minimal TOML writer for the flat test profiles used here."""
    lines = [f"{k} = {_toml(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"{k} = {_toml(v)}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value + "'"
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_registry_loads_extra_dirs(tmp_path: Path) -> None:
    _write(tmp_path, "lab.toml", changed(LINE, match={"usb": ["1234:5678"], "product": ["Lab Dial"]}))
    registry = ProfileRegistry.load([tmp_path])
    assert "lab-pot" in registry
    assert len(registry) == len(BUNDLED_IDS) + 1
    assert registry.get("lab-pot").path == tmp_path / "lab.toml"


def test_same_id_twice_names_both_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = _write(a, "one.toml", LINE)
    second = _write(b, "two.toml", LINE)
    with pytest.raises(ProfileError) as info:
        ProfileRegistry.load([a, b], bundled=False)
    assert info.value.key == "id"
    assert str(first) in str(info.value)
    assert str(second) in str(info.value)
    # the same directory twice is not a clash
    assert len(ProfileRegistry.load([a, a], bundled=False)) == 1


def test_same_id_as_a_bundled_profile_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "mine.toml", changed(LINE, id="arduino-pot"))
    with pytest.raises(ProfileError, match=r"arduino-pot\.toml"):
        ProfileRegistry.load([tmp_path])


def test_missing_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="directory not found"):
        ProfileRegistry.load([tmp_path / "nope"])


def test_unknown_id_lists_known_ids_closest_first() -> None:
    registry = ProfileRegistry.load()
    with pytest.raises(ProfileError) as info:
        registry.get("arduino-enc")
    message = str(info.value)
    assert "unknown profile 'arduino-enc'" in message
    listed = message.split("known profiles are ")[1]
    assert listed.startswith("arduino-encoder, arduino-pot")
    assert "teensy-fast" in listed


def test_match_usb() -> None:
    lab = profile_from_dict(changed(LINE, id="lab", match={"usb": ["2341:0043"], "product": ["Lab Dial"]}))
    by_name = profile_from_dict(changed(LINE, id="by-name", match={"product": ["lab dial"]}))
    nothing = profile_from_dict(changed(LINE, id="nothing"))
    registry = ProfileRegistry([LoadedProfile(p, None) for p in (lab, by_name, nothing)])

    assert [p.id for p in registry.match_usb(0x2341, 0x0043, "Arduino Lab Dial v2")] == ["lab", "by-name"]
    assert [p.id for p in registry.match_usb(0x2341, 0x0043, "Arduino Uno")] == []
    assert [p.id for p in registry.match_usb(0x2341, 0x0043, None)] == []
    assert [p.id for p in registry.match_usb(0x1111, 0x2222, "LAB DIAL")] == ["by-name"]

    bundled = ProfileRegistry.load()
    uno = {p.id for p in bundled.match_usb(0x2341, 0x0043, "Arduino Uno")}
    assert uno == {"arduino-pot", "arduino-encoder", "dialdaq-frame-v1"}
    assert [p.id for p in bundled.match_usb(0x16C0, 0x0483, None)] == ["dialdaq-frame-v1", "teensy-fast"]
    assert [p.id for p in bundled.match_usb(0x077D, 0x0410, "Griffin PowerMate")] == [
        "griffin-powermate-evdev",
        "griffin-powermate-hid",
    ]
