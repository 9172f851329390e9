"""`daq record`: the subscriber that turns sample messages into rows, dropping duplicates and reporting gaps.

It is one subscriber among many and gets nothing the others don't: it reads only the
topics in CONTRACT.md. Every sample is checked against the contract before it is written
(`record_check`): what is refused is counted by reason, never written, and no single message,
however malformed, stops the recorder. Duplicates (after a reconnect) are dropped by (boot, dial,
seq); gaps are reported as they appear and listed once, in the summary.json of the session where
they showed; seqs published before this recorder first heard of a boot are not a gap but
`before_subscribe`, in the recorder's own summary (`record_seqs`, `recorder.json`). The files are
`record_files`' job, their format `daq.recording`'s, the merge of a group's parts `record_merge`'s.

Stations: one id, several (`["lab-a", "lab-b"]`), or `+` for every station, including
those that appear later; each station's sessions go to `<out>/<station>/<session>/`.

Acknowledgements: a QoS 1 message is acknowledged to the broker only after its rows are
written and flushed to the operating system (in receive order, in batches whenever the local
queue runs empty: `commit`). Only a committed sample counts: its seq as seen, its row as written.
A batch that cannot be written (a full disk, EIO) is cut off its file again, its seqs stay unseen
and its messages unacknowledged: the connection is dropped, and a persistent session gets them
again and writes each row once. What the broker does not send again (a clean session) is counted
as `not_written` in summary.json and recorder.json (and, once later seqs come, it is a gap).
So a recorder that is killed loses nothing the broker still holds for it:
with `persistent=True` (clean start off, a session expiry) the broker redelivers every
unacknowledged message, and everything published while it was away, when it reconnects with
the same client id. Rows already in the file are not written twice: an existing file is read
when it is reopened, and its (boot, seq) pairs count as seen.

Shared subscriptions (`share="GROUP"`, MQTT `$share/GROUP/...`) split the samples between the
recorders of a group; status, session and meta stay plain subscriptions so that every recorder
writes complete headers. Each recorder then holds only a part of each dial, in a file of its own,
`<dial>@<recorder-id>.csv`; `record_merge.merge_recordings` combines the parts into `<dial>.csv`.
What the broker guarantees inside a group (measured with Mosquitto 2.0) is in
config/brokers/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from daq import mqtt
from daq.config import BrokerConfig
from daq.ids import check_id, is_id, parse_stations
from daq.recording import one_line, safe_name
from daq.subscribers.record_check import Refusals, Refused, check_sample
from daq.subscribers.record_files import DialFile, RecordingFiles, header_fields
from daq.subscribers.record_seqs import ReceivedSeqs, RecentSeqs, SeqSpans
from daq.topics import parse_topic, subscriber_filters

log = logging.getLogger(__name__)

DEFAULT_SESSION_EXPIRY_S = 86400
RECEIVE_MAXIMUM = 200  # MQTT 5: messages the broker may have in flight to us, unacknowledged
DRAIN_IDLE_S = 0.5  # leaving a shared group: stop when nothing more came for this long
DRAIN_MAX_S = 10.0

# Errors of the machine, not of one message: they go up (the connection is dropped and retried, and
# the broker sends again what was not acknowledged) rather than acknowledging samples not written.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE})


@dataclass(slots=True)
class Taken:
    """A sample accepted and in its file's buffer, not committed yet (entry None: seen, not written)."""

    station: str
    dial: str
    boot: str
    seq: int
    session: str
    t_ns: int | None
    entry: DialFile | None


@dataclass
class RecorderStats:
    rows: dict[tuple[str, str], int] = field(default_factory=dict)  # (station, dial) -> rows written
    duplicates: int = 0
    refused: Refusals = field(default_factory=Refusals)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    last_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    messages: int = 0
    late: int = 0  # accepted samples that came after a higher seq (they fill a gap)


class Recorder:
    """One `daq record`: subscribe, write each sample once, acknowledge what is written."""

    def __init__(
        self,
        broker: BrokerConfig,
        out_dir: Path,
        root: str = "daq",
        station: str | Sequence[str] = "+",
        client_id: str | None = None,
        *,
        share: str | None = None,
        persistent: bool = False,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        on_new_station: Callable[[str], None] | None = None,
    ) -> None:
        if share is not None:
            check_id(share, "shared subscription group")
        if persistent and not client_id:
            raise ValueError("a persistent session needs a fixed client id (--client-id)")
        if share is not None and client_id is None:
            client_id = f"rec-{secrets.token_hex(4)}"
        if share is not None and client_id is not None:
            check_id(client_id, "client id (it names this recorder's files)")
        self.broker = broker
        self.out_dir = out_dir
        self.root = root
        self.stations = parse_stations(station)
        self.station = ",".join(self.stations)
        self.client_id = client_id
        self.share = share
        self.persistent = persistent
        self.session_expiry_s = session_expiry_s
        self.on_new_station = on_new_station
        self.stats = RecorderStats()
        self.metas: dict[tuple[str, str], dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.seen_stations: set[str] = set()
        self._only = None if self.stations == ["+"] else frozenset(self.stations)  # the stations recorded
        self.trackers: dict[tuple[str, str, str], ReceivedSeqs] = {}  # (station, boot, dial)
        self.recent: dict[tuple[str, str, str], RecentSeqs] = {}  # the same, in a shared group
        self.taken: list[Taken] = []  # since the last commit, in receive order
        self.pending: dict[tuple[str, str, str], set[int]] = {}  # their seqs, by (station, boot, dial)
        self.unwritten: dict[tuple[str, str, str, str], SeqSpans] = {}  # (station, session, dial, boot)
        self.files = RecordingFiles(out_dir, self.recorder_id, share, self._resumed)
        self.mqtt_session = mqtt.Session(broker, self.connect_options(), name="recorder", subscriptions=self.filters)
        self.connected = self.mqtt_session.connected  # set while connected and subscribed

    @property
    def recorder_id(self) -> str | None:
        """What names this recorder's files in a shared group."""
        return self.client_id if self.share is not None else None

    # -- subscriptions ----------------------------------------------------------------

    def filters(self) -> list[str]:
        """Plain filters first (status, session, meta: every recorder needs the headers), then samples."""
        plain: list[str] = []
        for station in self.stations:
            plain += [f for f in subscriber_filters(self.root, station) if not f.endswith("/samples")]
        return plain + self.sample_filters()

    def sample_filters(self) -> list[str]:
        prefix = f"$share/{self.share}/" if self.share is not None else ""
        return [f"{prefix}{self.root}/{station}/dials/+/samples" for station in self.stations]

    def connect_options(self) -> mqtt.ConnectOptions:
        """Acknowledge only what is written (manual acks); a persistent session outlives us on the broker."""
        return mqtt.ConnectOptions(
            client_id=self.client_id,
            clean=not self.persistent,
            manual_ack=True,
            receive_maximum=RECEIVE_MAXIMUM,
            session_expiry_s=self.session_expiry_s if self.persistent else None,
        )

    # -- the connection ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Record until `stop`; BrokerRefused (exit 2) when the broker refuses us at the start."""

        async def on_connected(connection: mqtt.Connection) -> None:
            await mqtt.consume(connection, stop, self._take, commit=self.commit)
            await self._leave(connection)

        try:
            await self.mqtt_session.run(stop, on_connected)
        finally:
            self.close()

    async def _leave(self, connection: mqtt.Connection) -> None:
        """Leaving a shared group: hand our share to the others, then take what is still on its way to us.

        Mosquitto keeps a message that it sent to a group member and that was not acknowledged in
        that member's session (it does not give it to another member), and a persistent member that
        is merely disconnected keeps getting its turn. So: unsubscribe the shared filters first (new
        samples now go to the others), write and acknowledge what still arrives until it is quiet,
        then disconnect with nothing left behind. Not a group member: what was not acknowledged is
        sent again anyway.
        """
        if self.share is None:
            return
        try:
            await connection.unsubscribe(self.sample_filters())
        except (mqtt.MqttError, TimeoutError) as exc:
            log.warning("recorder: could not leave the shared group cleanly (%s)", exc)
        drained = await mqtt.consume_until_quiet(
            connection, self._take, commit=self.commit, idle_s=DRAIN_IDLE_S, max_s=DRAIN_MAX_S
        )
        log.info("recorder: left shared group %s; %d messages drained", self.share, drained)

    def _take(self, message: mqtt.Message) -> None:
        self.stats.messages += 1
        self.handle(message.topic, message.payload)

    # -- messages ---------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        """One message: whatever is in it, it costs at most itself (counted), never the recorder."""
        try:
            self._handle(topic, payload)
        except Refused as refused:
            self.stats.refused.add(refused.reason, topic)
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise
            self._failed(topic, exc)
        except Exception as exc:  # one message must not stop the recorder
            self._failed(topic, exc)

    def _failed(self, topic: str, exc: BaseException) -> None:
        reason = f"error: {type(exc).__name__}"
        if self.stats.refused.reasons[reason] == 0:
            log.exception("recorder: a message on %s could not be handled", one_line(topic)[:120])
        self.stats.refused.add(reason, topic)

    def _handle(self, topic: str, payload: bytes) -> None:
        station, what, dial = parse_topic(self.root, topic)
        if not is_id(station) or (dial is not None and not is_id(dial)):
            raise Refused("topic has an invalid station or dial id")
        if self._only is not None and station not in self._only:  # a broker that delivers beyond the filters
            raise Refused("a station this recorder does not record")
        if station not in self.seen_stations:
            self.seen_stations.add(station)
            if self.on_new_station is not None:
                self.on_new_station(station)
            else:
                log.info("recorder: new station %s", station)
        try:
            body = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            raise Refused("not JSON") from None
        if what == "samples" and dial is not None:
            for sample in body if isinstance(body, list) else [body]:
                try:
                    checked = check_sample(station, dial, sample)
                except Refused as refused:
                    self.stats.refused.add(refused.reason, topic, self._where(station, sample))
                    continue
                self._sample(station, dial, checked)
        elif what == "meta" and dial is not None and isinstance(body, dict):
            if body.get("station", station) == station and body.get("dial", dial) == dial:
                self.metas[(station, dial)] = body
        elif what == "session" and isinstance(body, dict) and body.get("station", station) == station:
            self.sessions[station] = body

    @staticmethod
    def _where(station: str, sample: object) -> tuple[str, str] | None:
        """The session folder a refused sample would have gone to, when it names one that can be."""
        session = sample.get("session") if isinstance(sample, dict) else None
        if session is None or (isinstance(session, str) and session.isprintable() and len(session) <= 128):
            return station, session or "no-session"
        return None

    def _sample(self, station: str, dial: str, sample: dict[str, Any]) -> None:
        boot, seq = sample["boot"], sample["seq"]
        session = sample["session"] or "no-session"
        try:
            entry = self._file(station, session, dial)  # first: an existing file tells what is seen
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS and not self.seen(station, boot, dial, seq):
                self.unwritten.setdefault((station, session, dial, boot), SeqSpans()).add(seq)
            raise
        if self.seen(station, boot, dial, seq):
            self.stats.duplicates += 1
            return
        self.files.write(entry, sample)
        self._took(Taken(station, dial, boot, seq, session, sample["t_ns"], entry))

    def seen(self, station: str, boot: str, dial: str, seq: int) -> bool:
        """A duplicate: committed already (or in a continued file), or taken since the last commit."""
        key = (station, boot, dial)
        if seq in self.pending.get(key, ()):
            return True
        if self.share is None:
            tracker = self.trackers.get(key)
            return tracker is not None and tracker.seen(seq)
        recent = self.recent.get(key)
        return recent is not None and seq in recent.seqs

    def mark_seen(self, station: str, boot: str, dial: str, seq: int, session: str) -> None:
        """A sample not written but counted as received (at the next commit, in receive order)."""
        if not self.seen(station, boot, dial, seq):
            self._took(Taken(station, dial, boot, seq, session, None, None))

    def _took(self, taken: Taken) -> None:
        self.taken.append(taken)
        self.pending.setdefault((taken.station, taken.boot, taken.dial), set()).add(taken.seq)

    # -- commits ----------------------------------------------------------------------

    def commit(self) -> None:
        """Write and flush what was taken; then (only then) its seqs are seen and its rows counted.

        `consume` runs this before it acknowledges the batch. Files that could not be written are
        cut back (`RecordingFiles.flush`): their samples stay unseen (a copy the broker sends again
        is written), are counted as not written until then, and the error goes up (not acknowledged)."""
        failed, error = self.files.flush()
        taken, self.taken = self.taken, []
        self.pending.clear()
        lost = 0
        for item in taken:
            if item.entry is not None and id(item.entry) in failed:
                self.unwritten.setdefault((item.station, item.session, item.dial, item.boot), SeqSpans()).add(item.seq)
                lost += 1
            else:
                self._committed(item)
        if error is not None:
            log.error("recorder: %d samples not written (%s): not acknowledged", lost, error)
            raise error

    def _committed(self, item: Taken) -> None:
        station, dial, boot, seq, session = item.station, item.dial, item.boot, item.seq, item.session
        if self.unwritten:
            spans = self.unwritten.get((station, session, dial, boot))
            if spans is not None:
                spans.discard(seq)
        gap: tuple[int, int] | None = None
        behind = False
        if self.share is None:
            tracker = self.trackers.setdefault((station, boot, dial), ReceivedSeqs())
            behind = tracker.first is not None and seq <= tracker.last
            accept, gap = tracker.offer(seq, session, item.t_ns)
        else:  # a part: the other seqs are with the other members, so holes are normal, not gaps
            accept = self.recent.setdefault((station, boot, dial), RecentSeqs()).add(seq)
        if not accept or item.entry is None:
            return
        if behind:
            self.stats.late += 1
            item.entry.late += 1
        if gap is not None and self.share is None:  # in a shared group the other seqs are elsewhere
            info = {
                "station": station,
                "dial": dial,
                "boot": boot,
                "first": gap[0],
                "last": gap[1],
                "count": gap[1] - gap[0] + 1,
            }
            self.stats.gaps.append(info)
            log.warning(
                "gap: %s/%s boot %s is missing seq %d..%d (%d samples)",
                station,
                dial,
                boot,
                gap[0],
                gap[1],
                info["count"],
            )
        key = (station, dial)
        self.stats.rows[key] = self.stats.rows.get(key, 0) + 1
        self.stats.last_seq[key] = max(seq, self.stats.last_seq.get(key, -1))

    def not_written(self, station: str | None = None, session: str | None = None) -> dict[str, int]:
        """Per dial, the samples received whose rows could not be written (and did not come again)."""
        out: dict[str, int] = {}
        for (st, se, d, _), spans in self.unwritten.items():
            if (station is None or st == station) and (session is None or se == session) and spans.count:
                out[d] = out.get(d, 0) + spans.count
        return out

    def _file(self, station: str, session: str, dial: str) -> DialFile:
        def header() -> dict[str, object]:
            meta = self.metas.get((station, dial), {})
            clock = self.sessions.get(station, {}).get("clock", {})
            return header_fields(station, session, dial, meta, clock, self.client_id, self.share)

        return self.files.file(station, session, dial, header)

    def _resumed(
        self, station: str, session: str, dial: str, seen: dict[str, list[int]], gaps: list[tuple[str, int, int]]
    ) -> None:
        """A file of an earlier run is continued: the samples in it count as seen, and the gaps its
        summary.json reported stay this session's (also one just before the file's first row)."""
        for boot, seqs in seen.items():
            for seq in sorted(seqs):
                if self.share is None:
                    tracker = self.trackers.setdefault((station, boot, dial), ReceivedSeqs(resumed=True))
                    tracker.offer(seq, session)
                else:
                    self.recent.setdefault((station, boot, dial), RecentSeqs()).add(seq)
        for boot, lo, hi in gaps if self.share is None else []:
            found = self.trackers.get((station, boot, dial))
            if found is not None:
                found.mark_gap(lo, hi, session)

    def _session_report(self, station: str, session: str, dials: set[str]) -> dict[str, Any]:
        """What one session folder's summary.json says of gaps and refusals: only what happened there."""
        gaps = [
            {"dial": d, "boot": b, "missing": missing}
            for (st, b, d), t in self.trackers.items()
            if st == station and d in dials and (missing := t.missing_in(session))
        ]
        report: dict[str, Any] = {"gaps": gaps}
        not_written = {d: n for d, n in self.not_written(station, session).items() if d in dials}
        if not_written:
            report["not_written"] = not_written
        refused = self.stats.refused.by_session.get((station, session))
        if refused:
            report["rejected"] = Refusals.report(refused)
        return report

    def before_subscribe(self) -> list[dict[str, Any]]:
        """Per boot and dial first heard of mid-way: the seqs below the first received, not received."""
        return [
            {
                "station": st,
                "dial": d,
                "boot": b,
                "first_seq_seen": t.first,
                "first_t_ns": t.first_t_ns,
                "session": t.first_session,
                "not_received": t.before_first,
            }
            for (st, b, d), t in sorted(self.trackers.items(), key=lambda item: item[0])
            if not t.resumed and t.first
        ]

    def summary(self) -> dict[str, Any]:
        """The recorder's own summary (`recorder.json`): this run, all stations and sessions."""
        rows = [{"station": st, "dial": d, "rows": n} for (st, d), n in sorted(self.stats.rows.items())]
        return {
            "client_id": self.client_id,
            "share": self.share,
            "messages": self.stats.messages,
            "rows": rows,
            "duplicates_dropped": self.stats.duplicates,
            "not_written": sum(self.not_written().values()),
            "gaps": sum(t.missing_count for t in self.trackers.values()),
            "before_subscribe": self.before_subscribe(),
            "rejected": Refusals.report(self.stats.refused.reasons),
        }

    @property
    def summary_path(self) -> Path:
        name = "recorder" if self.client_id is None else f"recorder@{safe_name(self.client_id)}"
        return self.out_dir / f"{name}.json"

    def close(self) -> None:
        """Commit what was taken; close the files; write each session's summary.json and our own."""
        with contextlib.suppress(OSError):  # logged and counted (not_written): the summaries say so
            self.commit()
        self.files.close(self._session_report, self.stats.duplicates)
        if self.stats.messages or self.stats.rows:
            self._write_summary()

    def _write_summary(self) -> None:
        summary = self.summary()
        path = self.summary_path
        try:  # a restarted persistent recorder keeps what its earlier runs found before they subscribed
            earlier = json.loads(path.read_text(encoding="utf-8")).get("before_subscribe", [])
        except (OSError, ValueError, AttributeError):
            earlier = []
        known = {(e["station"], e["dial"], e["boot"]) for e in summary["before_subscribe"]}
        kept = [
            e for e in earlier if isinstance(e, dict) and (e.get("station"), e.get("dial"), e.get("boot")) not in known
        ]
        summary["before_subscribe"] = kept + summary["before_subscribe"]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
