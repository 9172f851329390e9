"""Station configuration: a TOML file validated by pydantic, plus environment overrides.

Secrets and the broker address may come from the environment so that config files can be
shared: DAQ_BROKER_URL, DAQ_BROKER_USERNAME, DAQ_BROKER_PASSWORD, DAQ_BROKER_PASSWORD_FILE,
DAQ_STATION. Every error names the file and the key; see `load_config`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from daq.contract import Scale
from daq.exceptions import ConfigError
from daq.ids import IdStr, RootStr, default_station_id
from daq.mediaclock.registry import CLOCKS
from daq.seams import resolve
from daq.transports.attachment import Attachment
from daq.validation import StrictModel, raise_config_error

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerAddress(StrictModel):
    scheme: Literal["mqtt", "mqtts"]
    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def display(self) -> str:
        """For logs: never the password."""
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] or mqtts://... ; ValueError says what is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        # Never echo the url itself: it may carry user:password@.
        got = f"{parts.scheme}://..." if parts.scheme else "no scheme"
        raise ValueError(f"broker url must start with mqtt:// or mqtts:// (e.g. mqtt://localhost:1883), got {got}")
    if not parts.hostname:
        raise ValueError(f"broker url has no host: write it as mqtt://HOST:PORT, got {parts.scheme}://...")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError("broker url port must be a number from 1 to 65535") from None
    if parts.path not in ("", "/"):
        raise ValueError("broker url takes no path: write it as mqtt://HOST:PORT")
    return BrokerAddress(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
    )


class TlsConfig(StrictModel):
    enabled: bool = Field(False, description="use TLS (also switched on by an mqtts:// url)")
    ca_file: Path | None = Field(None, description="CA certificate(s) to trust; default: the system's")
    cert_file: Path | None = Field(None, description="client certificate, for brokers that require one")
    key_file: Path | None = Field(None, description="client private key")
    check_hostname: bool = Field(True, description="verify the broker's name against its certificate")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file, or neither")
        return self


class BrokerConfig(StrictModel):
    url: str = Field("mqtt://localhost:1883", description="mqtt://HOST:PORT or mqtts://HOST:PORT")
    username: str | None = None
    password: SecretStr | None = Field(None, description="better: DAQ_BROKER_PASSWORD or password_file")
    password_file: Path | None = Field(None, description="file whose first line is the password")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    client_id: str | None = Field(None, description="default: daq-<station>")
    keepalive_s: int = Field(30, ge=5, le=3600)
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """HOST:PORT without a scheme (`--broker localhost:1883`) is taken as mqtt://HOST:PORT."""
        if "://" not in value and value.strip():
            value = f"mqtt://{value.strip()}"
        parse_broker_url(value)
        return value

    @property
    def address(self) -> BrokerAddress:
        return parse_broker_url(self.url)

    @property
    def use_tls(self) -> bool:
        return self.tls.enabled or self.address.tls

    def effective_username(self) -> str | None:
        return self.username or self.address.username

    def effective_password(self) -> str | None:
        """The password from config, file or url; read only when connecting, never logged."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            try:
                return self.password_file.read_text(encoding="utf-8").splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ConfigError(self.password_file, "broker.password_file", f"cannot read it: {exc}") from None
        if self.address.password is not None:
            return self.address.password.get_secret_value()
        return None


# `[station] readers` (daq.transports.reader_host): where serial ports and hidraw nodes are read and stamped.
SerialReaders = Literal["process", "thread"]
SERIAL_READERS_HELP = (
    "where serial ports (and HID dials on Linux's hidraw) are read and stamped: 'process' (a reader process "
    "of their own, whose stamps never "
    "wait for the daemon; Linux and macOS, threads elsewhere) or 'thread' (a thread of the daemon)"
)

READER_PRIORITY_HELP = (
    "how the reader process (serial ports, hidraw dials) is scheduled: 'realtime' (SCHED_FIFO where "
    "permitted: root, CAP_SYS_NICE or an rtprio limit on Linux; else normal priority, logged) or 'normal'"
)


class StationConfig(StrictModel):
    id: IdStr = Field(default_factory=default_station_id, description="station id; default: the host name")
    root: RootStr = Field("daq", description="topic root")
    # The event loop (daq.event_loop): uvloop where installed; env DAQ_EVENT_LOOP overrides.
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="event loop: auto (uvloop where installed, else asyncio), asyncio or uvloop"
    )
    readers: SerialReaders = Field("process", description=SERIAL_READERS_HELP)
    reader_priority: Literal["realtime", "normal"] = Field("realtime", description=READER_PRIORITY_HELP)


def default_outbox_dir(station: str) -> Path:
    """Where a station keeps its outbox: systemd's StateDirectory, else the XDG state home."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / f"outbox-{station}"
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "dialdaq" / f"outbox-{station}"


class OutboxConfig(StrictModel):
    path: Path | None = Field(
        None,
        description="folder of the outbox; default ~/.local/state/dialdaq/outbox-<station> "
        "($XDG_STATE_HOME, or $STATE_DIRECTORY under systemd)",
    )
    memory: bool = Field(False, description="keep the outbox in memory only: survives broker outages, not a crash")
    max_bytes: int = Field(4 * 1024**3, ge=1024 * 1024, description="bound on the outbox's files (default 4 GiB)")
    policy: Literal["drop-oldest", "refuse-new"] = Field(
        "drop-oldest",
        description="when full: delete the oldest unsent samples, or drop new ones (counted, an outbox.full event)",
    )
    fsync: bool = Field(False, description="fsync every sample: survives power loss, costs a disk flush per sample")
    backlog_share: float = Field(
        0.25, gt=0, le=1, description="share of the publisher an earlier run's backlog gets beside live samples"
    )


class PublishConfig(StrictModel):
    batch_max: int = Field(100, ge=1, le=1000, description="most samples of one dial per message; 1 = never an array")
    batch_linger_ms: float = Field(
        0, ge=0, le=1000, description="wait this long to fill a batch; 0 = send what is there"
    )
    max_inflight: int = Field(256, ge=1, le=65535, description="messages sent but not yet acknowledged")
    gather_ms: float = Field(
        5.0,
        ge=0,
        le=1000,
        description="a dial faster than two samples per this long has its samples wait this long at most "
        "and go together in one array (1 kHz: ~5 per message; 100 Hz never waits); 0: each goes out at once",
    )


def _known_clock(value: Any) -> Any:
    """A registered media clock kind (daq.mediaclock.registry)."""
    if not isinstance(value, str) or CLOCKS.get(value) is None:
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": CLOCKS.choices()})
    return value


def _clock_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = list(CLOCKS.names())


ClockName = Annotated[str, BeforeValidator(_known_clock)]
"""`[media] clock`: the name of a kind in daq.mediaclock.registry."""


class MediaConfig(StrictModel):
    clock: ClockName = Field(
        "session",
        json_schema_extra=_clock_enum,
        description="where media positions come from: session (free-running, by command), mpv (its IPC "
        "socket), mqtt (<root>/<station>/media/position), mtc (MIDI Time Code; the midi extra) or none",
    )
    rate: str = Field("25", description="frame rate: 23.976, 24, 25, 29.97, 29.97df, 30, 50, 59.94df, 60 ...")
    start_timecode: str = Field("00:00:00:00", description="timecode at the start of the session")
    autostart: bool = Field(True, description="start a session when the station starts")
    mpv_socket: Path | None = Field(
        None, description="clock = 'mpv': the socket path mpv was started with (--input-ipc-server=PATH)"
    )
    mtc_port: str | None = Field(
        None, description="clock = 'mtc': MIDI input port name (see mido.get_input_names()); default: the first"
    )

    @model_validator(mode="after")
    def _clock_options(self) -> MediaConfig:
        kind = CLOCKS.get(self.clock)
        if kind is not None and kind.check is not None:
            resolve(kind.check)(self)  # raises ValueError: what this clock also needs
        return self

    @model_validator(mode="after")
    def _timecode(self) -> MediaConfig:
        from daq.timecode import FrameRate, TimecodeError, timecode_to_frame

        try:
            rate = FrameRate.parse(self.rate)
        except TimecodeError as exc:
            raise ValueError(f"rate: {exc}") from None
        try:
            timecode_to_frame(self.start_timecode, rate)
        except TimecodeError as exc:
            raise ValueError(f"start_timecode: {exc}") from None
        return self


MAX_MAGNITUDE = 1e15
"""Bound on a scale's or a calibration's ends: far beyond any dial, and a span that cannot overflow."""

STEP_MIN = 1e-6
"""The finest scale step: values are rounded to 6 decimals, so a finer step would be lost."""

SIMULATE_RATE_HZ = (0.01, 10000.0)
"""The readings a second a simulated dial may make."""

Bounded = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]


class Calibration(StrictModel):
    raw_min: Bounded | None = Field(None, description="raw reading at the scale's min end; default from the profile")
    raw_max: Bounded | None = Field(None, description="raw reading at the scale's max end; default from the profile")
    invert: bool = Field(False, description="turning right lowers the value")
    center: Bounded | None = Field(None, description="raw reading that maps to the middle of the scale")
    clamp: bool = Field(True, description="keep values within the scale")
    deadband: float = Field(0, ge=0, le=MAX_MAGNITUDE, description="ignore changes smaller than this (in scale units)")

    @model_validator(mode="after")
    def _ends(self) -> Calibration:
        if self.raw_min is not None and self.raw_min == self.raw_max:
            raise PydanticCustomError(
                "calibration", "raw_min and raw_max must differ (set raw_max to the reading at the other end)"
            )
        return self


class SimulateConfig(StrictModel):
    rate_hz: float = Field(
        10,
        ge=SIMULATE_RATE_HZ[0],
        le=SIMULATE_RATE_HZ[1],
        description=f"readings per second, {SIMULATE_RATE_HZ[0]:g} to {SIMULATE_RATE_HZ[1]:g}",
    )
    seed: int | None = Field(None, description="random seed; default derived from the dial id")


def check_scale(scale: Scale) -> Scale:
    """The scale, if a dial can be on it; else an error naming the key and the fix."""
    for key in ("min", "max"):
        value = getattr(scale, key)
        if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            raise PydanticCustomError(
                "scale",
                "{key} = {value}: a scale's ends lie within ±{bound}",
                {"key": key, "value": value, "bound": f"{MAX_MAGNITUDE:g}"},
            )
    if not scale.min < scale.max:
        raise PydanticCustomError(
            "scale",
            "min ({min}) must be less than max ({max}); to turn the dial the other way, set calibration.invert = true",
            {"min": f"{scale.min:g}", "max": f"{scale.max:g}"},
        )
    span = scale.max - scale.min
    if scale.step and not STEP_MIN <= scale.step <= span:
        raise PydanticCustomError(
            "scale",
            "step = {step}: give 0 (continuous) or a step from {lo} (values carry 6 decimals) up to the span, {span}",
            {"step": repr(scale.step), "lo": f"{STEP_MIN:g}", "span": f"{span:g}"},
        )
    return scale


DialScale = Annotated[Scale, AfterValidator(check_scale)]
"""`[dials.scale]`: a contract `Scale` whose ends are ordered and bounded and whose step fits."""


class DialConfig(StrictModel):
    id: IdStr = Field(description="dial id, used in topics")
    profile: str | None = Field(None, description="firmware profile id or path to a profile file")
    simulate: SimulateConfig | None = Field(None, description="a simulated dial instead of a device")
    channel: str | None = Field(None, description="profile channel to read; default: the profile's first")
    port: str | None = None
    usb: str | None = None
    serial_number: str | None = None
    location: str | None = None
    scale: DialScale = Field(default_factory=lambda: Scale(min=0, max=100))
    calibration: Calibration = Field(default_factory=Calibration)

    @model_validator(mode="after")
    def _source(self) -> DialConfig:
        if (self.profile is None) == (self.simulate is None):
            raise ValueError("give either profile = '<profile id>' or a [dials.simulate] table")
        return self

    @property
    def attachment(self) -> Attachment:
        return Attachment(port=self.port, usb=self.usb, serial_number=self.serial_number, location=self.location)


class ControlConfig(StrictModel):
    """[control]: where command replies may go (see daq.station.reply_topics)."""

    reply_prefix: str | None = Field(
        None,
        description="MQTT 5 response topics under this prefix get their reply there "
        "(default <root>/<station>/replies/); any other goes to <root>/<station>/cmd/<verb>/reply with an error",
    )

    @field_validator("reply_prefix")
    @classmethod
    def _reply_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        stripped = value.strip("/")
        if not stripped or any(c in value for c in "+#\x00") or value.startswith(("$", "/")) or "//" in value:
            raise ValueError(
                'reply_prefix must be topic levels without wildcards, e.g. "daq/replies/" (not empty, no + or #, '
                "no leading / or $)"
            )
        return stripped + "/"


class DaqConfig(StrictModel):
    station: StationConfig = Field(default_factory=StationConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    profile_dirs: list[Path] = Field(default_factory=list, description="folders of extra firmware profiles")
    dials: list[DialConfig] = Field(default_factory=list)
    _source_file: Path | None = PrivateAttr(None)

    @property
    def source_file(self) -> Path | None:
        """The file this config was read from, for error messages."""
        return self._source_file

    @model_validator(mode="after")
    def _unique_dials(self) -> DaqConfig:
        seen: set[str] = set()
        for dial in self.dials:
            if dial.id in seen:
                raise ValueError(f"dial id {dial.id!r} is used twice: every dial needs its own id")
            seen.add(dial.id)
        return self


ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "DAQ_BROKER_URL": ("broker", "url"),
    "DAQ_BROKER_USERNAME": ("broker", "username"),
    "DAQ_BROKER_PASSWORD": ("broker", "password"),
    "DAQ_BROKER_PASSWORD_FILE": ("broker", "password_file"),
    "DAQ_STATION": ("station", "id"),
    "DAQ_EVENT_LOOP": ("station", "event_loop"),
}


def apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for name, (table, key) in ENV_OVERRIDES.items():
        if env.get(name):
            data.setdefault(table, {})[key] = env[name]
    return data


def build_config(data: dict[str, Any], file: str | Path | None = None) -> DaqConfig:
    try:
        config = DaqConfig.model_validate(data)
    except ValidationError as exc:
        raise_config_error(file, exc)
    return _resolve_paths(config, file)


def _resolve_paths(config: DaqConfig, file: str | Path | None) -> DaqConfig:
    """Relative paths in a config file are relative to the file, not to where daq was started."""
    base = Path(file).parent if file else Path.cwd()
    outbox = config.outbox
    if outbox.path is not None and not outbox.path.is_absolute():
        outbox = outbox.model_copy(update={"path": base / outbox.path})
    dirs = [d if d.is_absolute() else base / d for d in config.profile_dirs]
    dials = [
        d.model_copy(update={"profile": str(base / d.profile)})
        if d.profile and d.profile.endswith(".toml") and not Path(d.profile).is_absolute()
        else d
        for d in config.dials
    ]
    resolved = config.model_copy(update={"profile_dirs": dirs, "dials": dials, "outbox": outbox})
    resolved._source_file = Path(file) if file else None
    return resolved


def read_config_data(path: str | Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config file as a dict, with environment overrides applied; not validated yet."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            file, None, "no such file: check the path, or start from the example: daq config example > daq.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read it: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from None
    return apply_env(data, os.environ if env is None else env)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> DaqConfig:
    """Read, validate and return the config; ConfigError names file, key and fix."""
    return build_config(read_config_data(path, env), path)
