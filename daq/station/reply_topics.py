"""Where a command's reply may go: never into the station's own data or status topics.

A reply goes to the request's MQTT 5 response topic when that topic is

- `<root>/<station>/cmd/<verb>/reply`, or below it (`daq session` uses `.../reply/<id>`), or
- under the reply prefix (`[control] reply_prefix`, default `<root>/<station>/replies/`),

and is not one of the station's own topics (status, session, health, events, dials/..., media/...,
a command topic `cmd/<verb>`), whatever the prefix says. Without a response topic (MQTT 3.1.1) it
goes to `<root>/<station>/cmd/<verb>/reply`. A request whose response topic is anything else is
not carried out: its reply, `ok: false` with an error that says why, goes to the default topic.

The shipped broker ACL (config/mosquitto/acl) lets a station write its whole subtree, so the
default prefix needs no ACL line; a prefix outside `<root>/<station>/` needs a `pattern write` line.
"""

from __future__ import annotations

from daq.exceptions import ConfigError
from daq.topics import Topics

MAX_TOPIC_BYTES = 65_535  # MQTT's limit on a topic name


def default_reply_prefix(topics: Topics) -> str:
    return f"{topics.base}/replies/"


class ReplyTopics:
    def __init__(self, topics: Topics, prefix: str | None = None) -> None:
        self.topics = topics
        self.prefix = prefix if prefix is not None else default_reply_prefix(topics)
        base = topics.base
        self._own_exact = {topics.status, topics.session, topics.health, topics.events}
        self._own_under = (f"{base}/dials/", f"{base}/media/")
        own = [*self._own_exact, topics.meta("x"), topics.samples("x"), topics.cmd("x"), f"{base}/media/position"]
        covered = [t for t in own if self._under(t, self.prefix)]
        if covered or self.prefix.rstrip("/") == base:
            raise ConfigError(
                None,
                "control.reply_prefix",
                f"{self.prefix!r} covers the station's own topics ({', '.join(sorted(covered)) or base}): "
                f"choose a prefix of its own, e.g. {default_reply_prefix(topics)!r}",
            )

    @staticmethod
    def _under(topic: str, prefix: str) -> bool:
        """`topic` is the prefix's topic itself or below it (levels, not characters)."""
        head = prefix.rstrip("/")
        return topic == head or topic.startswith(head + "/")

    def own(self, topic: str) -> bool:
        """One of the station's own topics (never a reply's)."""
        if topic in self._own_exact or topic.startswith(self._own_under):
            return True
        cmd = f"{self.topics.base}/cmd/"
        return topic.startswith(cmd) and "/" not in topic[len(cmd) :]

    def choose(self, verb: str, response_topic: str | None) -> tuple[str, str | None]:
        """(topic for the reply, None) or (the default reply topic, why the response topic is refused)."""
        default = self.topics.cmd_reply(verb)
        if response_topic is None:
            return default, None
        why = self._problem(verb, response_topic)
        return (default, why) if why else (response_topic, None)

    def _problem(self, verb: str, topic: str) -> str | None:
        shown = topic if len(topic) <= 200 else topic[:200] + "..."
        if not topic or any(c in topic for c in "+#\x00") or topic.startswith("$"):
            return f"response topic {shown!r} is not a topic a reply can be published to"
        if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
            return "response topic is longer than MQTT allows"
        if self.own(topic):
            return f"response topic {shown!r} is one of the station's own topics"
        if self._under(topic, self.topics.cmd_reply(verb)) or self._under(topic, self.prefix):
            return None
        return (
            f"response topic {shown!r} is not allowed: replies go to {self.topics.cmd_reply(verb)} (or below it) "
            f"or under {self.prefix} ([control] reply_prefix)"
        )
