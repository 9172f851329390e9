"""paho's socket IO on the loop's own thread, with fewer wake-ups and system calls per message.

aiomqtt drives paho from asyncio callbacks: on every packet paho queues, aiomqtt registers the
socket for writing through `call_soon_threadsafe` (an eventfd write and read, an `add_writer` and a
`remove_writer`, two more loop iterations), paho then sends each packet with its own `send`, and
reads each incoming packet with three `recv` calls (its first byte, its length, its body). At a
station's rates that is most of the cost of a message (issue 15). `WireIO` keeps paho's protocol
logic and changes only how bytes move:

- writing: a packet queued on the loop's thread is flushed later in the same loop turn by one
  callback; the packets queued by then (a burst of samples, their PUBACKs' successors) go out in
  one `send`. Only when the kernel buffer is full is the socket registered with the loop, and
  written again when writable. From another thread (paho connects in an executor) aiomqtt's
  way stays.
- reading: one `recv` of up to READ_CHUNK bytes per readable event; paho's small reads are served
  from that buffer, and `loop_read` goes on while bytes are buffered (no readiness event would
  come for them).
- acknowledging at the TCP level at once (Linux: TCP_QUICKACK, set again after every read that got
  bytes; the kernel drops it by itself): Mosquitto leaves Nagle on, so of the PUBACKs for a burst
  of messages it sends the first and holds the others until that one's TCP ACK comes back, and
  the station's kernel delays that ACK (40 ms) because the station has nothing to send then. So
  every burst cost a second wake-up 40 ms later, for its other PUBACKs (the demo's four 20 Hz
  dials: 3 wake-ups a tick instead of 2). Acknowledged at once, they come in the same moment.

Packets are merged only where paho does nothing after sending them: never a QoS 0 PUBLISH (paho
reports its delivery when written) nor a DISCONNECT (paho closes the socket after it).

- publishing (`DaqClient.publish_nowait`, QoS 1): the PUBLISH packet is built here (its topic's
  bytes kept per topic) and queued with paho's own packet id; paho's `publish` would make an
  MQTTMessage, an MQTTMessageInfo with a threading.Condition, and take two locks per message.
  On the loop's thread it goes onto paho's out queue directly and the flush is scheduled here
  (paho's `_packet_queue` would call back through aiomqtt into `register_write` for each one).
  paho keeps no record of these messages: a lost connection drops them, and the caller (the
  station's outbox) sends them again, as it did before (clean sessions).
- acknowledging: a PUBACK of such a message goes straight to its callback, with the broker's
  reason when an MQTT 5 PUBACK refused it (0x80 and up). Any other PUBACK (a PUBCOMP, a message
  published through paho) takes paho's path.
- receiving (`deliver`, set by `DaqClient`): a QoS 0 or 1 PUBLISH whose topic is UTF-8 and whose
  MQTT 5 properties are none, a response topic or correlation data becomes a `daq.mqtt.Message`
  here and is handed to `deliver` in arrival order; its PUBACK (4 bytes: at once, or by
  `puback` when the connection acknowledges by hand) is queued as a published packet is. paho's
  way made an MQTTMessage, an MQTTMessageInfo with a threading.Condition and a Properties object
  per message: a recorder of 64 dials x 100 Hz spent half its CPU there. Any other packet (QoS 2,
  other properties, a topic alias, a SUBACK, a PINGRESP) takes paho's path, in turn: the buffer
  is handed to paho at that packet, and taken up again after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from daq.mqtt.message import Message

__all__ = ["MAX_PAYLOAD", "READ_CHUNK", "NotConnected", "WireIO"]

READ_CHUNK = 65536
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
MAX_PAYLOAD = 268_435_455  # MQTT's largest remaining length (topic, packet id and payload)
TOPIC_CACHE = 1024  # topics whose encoded bytes are kept (a station has a few per dial)
NAME_CACHE_BYTES = 256  # received topics up to this long are kept decoded (a sample's is under 100)
_PUBLISH = 0x30
_PUBACK = 0x40
_DISCONNECT = 0xE0
_RESPONSE_TOPIC, _CORRELATION_DATA = 0x08, 0x09  # the MQTT 5 properties a received PUBLISH may carry here

Deliver = Callable[[Message], None]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _varint_at(buf: bytearray, k: int, end: int) -> tuple[int, int] | None:
    """The variable byte integer at `k` (at most four bytes, all before `end`) and where it ends;
    None when it is not all there or runs longer."""
    value = shift = 0
    for j in range(k, min(k + 4, end)):
        byte = buf[j]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, j + 1
        shift += 7
    return None


def _request_properties(props: bytes) -> tuple[str | None, bytes | None] | None:
    """A received PUBLISH's MQTT 5 properties when they are a response topic and correlation data
    only, each at most once (a request): (response topic, correlation data). None for anything else,
    which paho's path takes (another property; one twice or a U+0000, protocol errors paho closes on)."""
    response_topic: str | None = None
    correlation: bytes | None = None
    seen: set[int] = set()
    k, end = 0, len(props)
    while k < end:
        kind = props[k]
        if kind not in (_RESPONSE_TOPIC, _CORRELATION_DATA) or kind in seen or k + 3 > end:
            return None
        seen.add(kind)
        value_end = k + 3 + ((props[k + 1] << 8) | props[k + 2])
        if value_end > end:
            return None
        value = props[k + 3 : value_end]
        if kind == _RESPONSE_TOPIC:
            try:
                response_topic = value.decode("utf-8") or None
            except UnicodeDecodeError:
                return None
            if response_topic is not None and "\x00" in response_topic:
                return None
        else:
            correlation = value or None
        k = value_end
    return response_topic, correlation


_ONE_BYTE = [bytes((n,)) for n in range(128)]


def _refusal(code: int) -> str:
    """The name of an MQTT 5 PUBACK reason code of 0x80 or more (a refusal); one paho does not know
    by its number (a broker beyond the spec), never an exception."""
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=code))
    except (ValueError, KeyError):
        return f"reason code 0x{code:02x}"


class NotConnected(Exception):
    """The client has no connection to publish on."""


def _mergeable(packet: Any) -> bool:
    command = packet["command"] & 0xF0
    if command == _DISCONNECT or (command == _PUBLISH and packet["qos"] == 0):
        return False
    return bool(packet["pos"] == 0)


class WireIO:
    """Installed on one paho client by `DaqClient`; `on_error` is told when a write breaks the connection."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: mqtt.Client,
        on_error: Callable[[Exception], None],
        acks: dict[int, Callable[[str | None], None]],
    ):
        self._loop = loop
        self._loop_thread = threading.get_ident()  # made on the loop's thread (aiomqtt needs the running loop)
        self._acks = acks
        self._client = client
        self._on_error = on_error
        self._flush_due = False  # a flush is scheduled with call_soon
        self._writer_fd: int | None = None  # registered with the loop for writing, by us
        self._rbuf = bytearray()
        self._eof = False  # the broker closed the stream: paho's next read gets b""
        self._error: OSError | None = None  # a read failed: paho's next read raises it
        self._quickack = _QUICKACK is not None  # off for good once a socket refuses it (not TCP)
        self._paho_recv = client._sock_recv
        self._paho_loop_read = client.loop_read
        client._sock_recv = self._recv  # type: ignore[method-assign]
        client.loop_read = self._loop_read  # type: ignore[method-assign]
        self._paho_pubackcomp = client._handle_pubackcomp
        self._v5 = client._protocol == mqtt.MQTTv5
        self._topics: dict[str, bytes] = {}
        client._handle_pubackcomp = self._pubackcomp  # type: ignore[method-assign]
        self.deliver: Deliver | None = None  # received PUBLISHes go here, not through paho (module doc)
        self._names: dict[bytes, str] = {}  # received topics, decoded
        self.taken = 0  # received messages handed to `deliver` here (the others went through paho)

    # -- writing ----------------------------------------------------------------------------------

    def register_write(self) -> bool:
        """paho has queued a packet: True when it will be flushed in this loop turn, False when the
        caller is not on the loop's thread (aiomqtt's own way must do it then)."""
        if threading.get_ident() != self._loop_thread:  # not asyncio.get_running_loop: a getpid() each time
            return False
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        self._flush_due = False
        client = self._client
        self._merge_queued()
        try:
            client.loop_write()
        except Exception as exc:  # a broken pipe: the connection is gone (as in aiomqtt's callback)
            self._on_error(exc)
            return
        sock = client.socket()
        if client.want_write() and sock is not None and self._writer_fd is None:
            self._writer_fd = sock.fileno()  # the kernel buffer is full: write again when writable
            self._loop.add_writer(self._writer_fd, self.flush)

    def _merge_queued(self) -> None:
        """Join the queued packets paho does nothing with after sending into one, for one send."""
        queue = self._client._out_packet
        if len(queue) < 2 or not all(_mergeable(p) for p in queue):
            return
        parts = [p["packet"] for p in queue]
        first = queue[0]
        merged = dict(first, packet=b"".join(parts), to_process=sum(len(p) for p in parts), info=None, qos=1)
        queue.clear()
        queue.append(merged)  # type: ignore[arg-type]

    def unregister_write(self) -> None:
        if self._writer_fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self._writer_fd)
            self._writer_fd = None

    # -- reading ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """A socket opened or closed: bytes buffered from an earlier one are not this one's."""
        self._rbuf.clear()
        self._eof = False
        self._error = None
        self.unregister_write()

    def _fill(self) -> None:
        """Read what the socket has into the buffer, when it is empty. The end of the stream and an
        error are kept for paho, which hears of them from its next read (and closes as it does)."""
        if self._rbuf or self._eof or self._error is not None:
            return
        try:
            data = self._paho_recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self._error = exc
            return
        if data:
            self._rbuf += data
            if self._quickack:
                self._ack_now()
        else:
            self._eof = True

    def _ack_now(self) -> None:
        """Have the kernel send the TCP ACK of what was just read now, not up to 40 ms later (see the
        module's docstring); a socket that is not TCP (or a wrapper without setsockopt) turns it off."""
        try:
            self._client._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[union-attr]
        except (OSError, AttributeError):
            self._quickack = False

    def _recv(self, bufsize: int) -> bytes:
        buf = self._rbuf
        if not buf:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._eof:
                return b""
            data = self._paho_recv(READ_CHUNK)  # raises BlockingIOError when nothing is there
            if len(data) <= bufsize:
                return data  # b"" (closed by the broker) included
            buf += data
        out = bytes(buf[:bufsize])
        del buf[:bufsize]
        return out

    def _loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        client = self._client
        while True:
            if client._in_packet["command"] == 0:  # paho is not in the middle of a packet
                self._fill()
                self._plain_packets()
                if not (self._rbuf or self._eof or self._error):
                    return MQTTErrorCode.MQTT_ERR_SUCCESS  # all read were ours
            rc = self._paho_loop_read(max_packets)
            if rc != mqtt.MQTT_ERR_SUCCESS or not self._rbuf or client.socket() is None:
                return rc

    def _plain_packets(self) -> None:
        """Take the packets at the head of the buffer that need nothing of paho: PUBACKs for messages
        of `publish` (to their callbacks) and plain PUBLISHes (to `deliver`); stop at the first
        other packet, or one not all here yet (paho's then)."""
        buf = self._rbuf
        acks = self._acks
        deliver = self.deliver
        end = len(buf)
        i = 0
        try:
            while end - i >= 2:
                first = buf[i]
                if first == _PUBACK:
                    if end - i < 4:
                        break
                    length = buf[i + 1]
                    if length == 2:
                        code, size = 0, 4
                    elif length == 3 and end - i >= 5:
                        code, size = buf[i + 4], 5
                    else:
                        break  # properties follow, or not all here yet: paho's path
                    on_ack = acks.pop((buf[i + 2] << 8) | buf[i + 3], None)
                    if on_ack is None:
                        break  # not one of ours
                    i += size
                    on_ack(_refusal(code) if code >= 0x80 else None)
                elif first & 0xF0 == _PUBLISH and first & 0x06 < 0x04 and deliver is not None:  # QoS 0 or 1
                    stop, message = self._publish_at(buf, i, end)
                    if message is None:
                        break
                    i = stop  # past it before it is handed on
                    self.taken += 1
                    deliver(message)
                    if message.qos and not self._client._manual_ack:
                        self.puback(message.mid)  # as paho would, once the message is handed on
                else:
                    break
        finally:  # what was handed on leaves the buffer even if a callback raised: never twice
            if i:
                del buf[:i]
                self._client._last_bytes_received = mqtt.time_func()  # paho's keepalive clock

    def _publish_at(self, buf: bytearray, i: int, end: int) -> tuple[int, Message | None]:
        """The PUBLISH at `i` as a Message, and where the next packet starts; (0, None) when paho must
        take it (not all here yet, or more than a plain message)."""
        got = _varint_at(buf, i + 1, end)  # the remaining length
        if got is None:
            return 0, None
        length, j = got
        stop = j + length
        if stop > end or length < 2:
            return 0, None
        topic_end = j + 2 + ((buf[j] << 8) | buf[j + 1])
        qos = (buf[i] >> 1) & 0x03
        k = topic_end + 2 if qos else topic_end
        if k > stop:
            return 0, None
        raw_topic = bytes(buf[j + 2 : topic_end])
        topic = self._names.get(raw_topic)
        if topic is None:
            try:
                topic = raw_topic.decode("utf-8")
            except UnicodeDecodeError:
                return 0, None  # paho says what it says of that
            if not topic or "+" in topic or "#" in topic or "\x00" in topic:
                return 0, None  # a topic alias, or a topic no PUBLISH may carry: paho's path, as before
            if len(raw_topic) <= NAME_CACHE_BYTES:
                if len(self._names) >= TOPIC_CACHE:
                    self._names.clear()
                self._names[raw_topic] = topic
        mid = ((buf[topic_end] << 8) | buf[topic_end + 1]) if qos else 0
        response_topic: str | None = None
        correlation: bytes | None = None
        if self._v5:
            got = _varint_at(buf, k, stop)  # the properties' length
            if got is None:
                return 0, None
            props_len, k = got
            props_end = k + props_len
            if props_end > stop:
                return 0, None
            if props_len:  # a sample carries none
                request = _request_properties(bytes(buf[k:props_end]))
                if request is None:
                    return 0, None
                response_topic, correlation = request
            k = props_end
        return stop, Message(topic, bytes(buf[k:stop]), qos, bool(buf[i] & 0x01), response_topic, correlation, mid)

    # -- publishing --------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, retain: bool) -> int:
        """Queue a QoS 1 PUBLISH; return its packet id. Raises ValueError for what paho would refuse
        (an empty topic, a wildcard, over 65,535 bytes of topic, a payload over MAX_PAYLOAD) and
        NotConnected."""
        client = self._client
        if client._sock is None:
            raise NotConnected
        head = self._topics.get(topic)
        if head is None:
            head = self._topic_head(topic)
        props = b"\x00" if self._v5 else b""
        length = len(head) + 2 + len(props) + len(payload)
        if length > MAX_PAYLOAD:
            raise ValueError("Payload too large.")
        mid = client._mid_generate()
        ident = mid.to_bytes(2, "big")
        if length < 128:  # the remaining length's one or two bytes, inline (a sample is 150-400 bytes)
            size = _ONE_BYTE[length]
        elif length < 16384:
            size = bytes(((length & 0x7F) | 0x80, length >> 7))
        else:
            size = _varint(length)
        packet = b"".join((b"\x33" if retain else b"\x32", size, head, ident, props, payload))
        if self._flush_due or threading.get_ident() == self._loop_thread:
            # paho's _packet_queue, less what it does for a packet then: wake its own thread (there is
            # none) and call back into register_write, which would schedule the flush done here.
            client._out_packet.append(
                {
                    "command": _PUBLISH,
                    "mid": mid,
                    "qos": 1,
                    "pos": 0,
                    "to_process": len(packet),
                    "packet": packet,
                    "info": None,
                }
            )
            if not self._flush_due:
                self._flush_due = True
                self._loop.call_soon(self.flush)
        else:
            client._packet_queue(_PUBLISH, packet, mid, 1)
        return mid

    def _topic_head(self, topic: str) -> bytes:
        raw = topic.encode("utf-8")
        if not raw:
            raise ValueError("Invalid topic.")
        if b"+" in raw or b"#" in raw:
            raise ValueError("Publish topic cannot contain wildcards.")
        if len(raw) > 65535:
            raise ValueError("Publish topic is too long.")
        if len(self._topics) >= TOPIC_CACHE:
            self._topics.clear()
        head = self._topics[topic] = len(raw).to_bytes(2, "big") + raw
        return head

    # -- acknowledging ----------------------------------------------------------------------------

    def puback(self, mid: int) -> None:
        """Queue the PUBACK of received message `mid` (QoS 1), flushed in this loop turn; nothing
        without a connection (the broker sends an unacknowledged message again)."""
        client = self._client
        if client._sock is None:
            return
        packet = b"\x40\x02" + mid.to_bytes(2, "big")
        if self._flush_due or threading.get_ident() == self._loop_thread:
            client._out_packet.append(
                {"command": _PUBACK, "mid": mid, "qos": 0, "pos": 0, "to_process": 4, "packet": packet, "info": None}
            )
            if not self._flush_due:
                self._flush_due = True
                self._loop.call_soon(self.flush)
        else:
            client._packet_queue(_PUBACK, packet, mid, 0)

    def _pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        body = self._client._in_packet["packet"]
        if cmd == "PUBACK" and len(body) >= 2:
            on_ack = self._acks.pop(int.from_bytes(body[:2], "big"), None)
            if on_ack is not None:
                # MQTT 5: a reason byte may follow; 0x80 and up is a refusal (not authorised, a quota).
                code = body[2] if len(body) > 2 else 0
                on_ack(_refusal(code) if code >= 0x80 else None)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._paho_pubackcomp(cmd)
