"""`daq record`: a subscriber that writes one CSV per session and dial.

It is one subscriber among many and gets nothing the others don't: it reads only the
topics in CONTRACT.md. Duplicates (after a reconnect) are dropped by (boot, dial, seq);
gaps are reported as they appear and listed in each session's summary.json.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiomqtt
import orjson

from daq.config import BrokerConfig
from daq.mqtt_client import make_client
from daq.publisher import Backoff
from daq.seqtrack import SeqTracker
from daq.topics import parse_topic, subscriber_filters

log = logging.getLogger(__name__)

COLUMNS = ("boot", "seq", "t_ns", "media_s", "timecode", "frame", "value", "raw", "replay")
FLUSH_EVERY_S = 0.5


@dataclass
class DialFile:
    path: Path
    handle: TextIO
    writer: Any  # csv writer
    rows: int = 0


@dataclass
class RecorderStats:
    rows: dict[tuple[str, str], int] = field(default_factory=dict)  # (station, dial) -> rows written
    duplicates: int = 0
    invalid: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    last_seq: dict[tuple[str, str], int] = field(default_factory=dict)


class Recorder:
    def __init__(
        self,
        broker: BrokerConfig,
        out_dir: Path,
        root: str = "daq",
        station: str = "+",
        client_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.out_dir = out_dir
        self.root = root
        self.station = station
        self.client_id = client_id
        self.stats = RecorderStats()
        self.metas: dict[tuple[str, str], dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.trackers: dict[tuple[str, str, str], SeqTracker] = {}  # (station, boot, dial)
        self.files: dict[tuple[str, str, str], DialFile] = {}  # (station, session, dial)
        self.connected = asyncio.Event()
        self._last_flush = time.monotonic()

    # -- the connection ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        backoff = Backoff()
        try:
            while not stop.is_set():
                try:
                    async with make_client(self.broker, self.client_id, clean=True) as client:
                        attempt = 0
                        for topic in subscriber_filters(self.root, self.station):
                            await client.subscribe(topic, qos=1)
                        self.connected.set()
                        await self._consume(client, stop)
                        return
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    delay = backoff.delay(attempt)
                    attempt += 1
                    log.warning("recorder: broker unreachable (%s); retrying in %.1f s", exc, delay)
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except TimeoutError:
                        pass
        finally:
            self.close()

    async def _consume(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            messages = aiter(client.messages)
            while True:
                getter = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=FLUSH_EVERY_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    message = getter.result()
                    self.handle(str(message.topic), bytes(message.payload))
                else:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                self._maybe_flush()
                if stopper in done:
                    return
        finally:
            stopper.cancel()

    # -- messages ---------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        station, what, dial = parse_topic(self.root, topic)
        try:
            body = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            self.stats.invalid += 1
            log.warning("recorder: %s is not JSON; ignored", topic)
            return
        if what == "samples" and dial is not None:
            for sample in body if isinstance(body, list) else [body]:
                if isinstance(sample, dict):
                    self._sample(station, dial, sample)
                else:
                    self.stats.invalid += 1
        elif what == "meta" and dial is not None and isinstance(body, dict):
            self.metas[(station, dial)] = body
        elif what == "session" and isinstance(body, dict):
            self.sessions[station] = body

    def _sample(self, station: str, dial: str, sample: dict[str, Any]) -> None:
        try:
            boot, seq = str(sample["boot"]), int(sample["seq"])
        except (KeyError, TypeError, ValueError):
            self.stats.invalid += 1
            return
        tracker = self.trackers.setdefault((station, boot, dial), SeqTracker())
        accept, gap = tracker.offer(seq)
        if not accept:
            self.stats.duplicates += 1
            return
        if gap is not None:
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
        session = sample.get("session") or "no-session"
        handle = self._file(station, str(session), dial, sample)
        handle.writer.writerow([sample.get(c, "") if sample.get(c) is not None else "" for c in COLUMNS])
        handle.rows += 1
        key = (station, dial)
        self.stats.rows[key] = self.stats.rows.get(key, 0) + 1
        self.stats.last_seq[key] = max(seq, self.stats.last_seq.get(key, -1))

    def _file(self, station: str, session: str, dial: str, sample: dict[str, Any]) -> DialFile:
        key = (station, session, dial)
        found = self.files.get(key)
        if found is not None:
            return found
        folder = self.out_dir / station / session
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{dial}.csv"
        fresh = not path.exists()
        handle = path.open("a", encoding="utf-8", newline="")
        if fresh:
            handle.write(self._header(station, session, dial, sample))
        writer = csv.writer(handle)
        if fresh:
            writer.writerow(COLUMNS)
        entry = DialFile(path, handle, writer)
        self.files[key] = entry
        return entry

    def _header(self, station: str, session: str, dial: str, sample: dict[str, Any]) -> str:
        meta = self.metas.get((station, dial), {})
        clock = self.sessions.get(station, {}).get("clock", {})
        lines = {
            "dialdaq recording": "",
            "station": station,
            "dial": dial,
            "session": session,
            "profile": meta.get("profile", ""),
            "device": meta.get("device", ""),
            "scale": json.dumps(meta.get("scale", {}), sort_keys=True),
            "rate_hz": meta.get("rate_hz", ""),
            "timecode_rate": clock.get("rate", ""),
            "media_clock": clock.get("kind", ""),
        }
        out = io.StringIO()
        for key, value in lines.items():
            out.write(f"# {key}: {value}\n" if value != "" or key != "dialdaq recording" else f"# {key}\n")
        return out.getvalue()

    # -- files ------------------------------------------------------------------------

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_EVERY_S:
            self._last_flush = now
            for entry in self.files.values():
                entry.handle.flush()

    def close(self) -> None:
        summaries: dict[Path, dict[str, Any]] = {}
        for (station, session, dial), entry in self.files.items():
            entry.handle.close()
            summary = summaries.setdefault(
                entry.path.parent, {"station": station, "session": session, "dials": {}}
            )
            summary["dials"][dial] = {"rows": entry.rows, "file": entry.path.name}
        self.files.clear()
        for folder, summary in summaries.items():
            station = summary["station"]
            summary["gaps"] = [
                {"dial": d, "boot": b, "missing": t.missing}
                for (st, b, d), t in self.trackers.items()
                if st == station and t.missing
            ]
            summary["duplicates_dropped"] = self.stats.duplicates
            (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
