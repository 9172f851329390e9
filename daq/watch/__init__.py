"""`daq watch`: the group's trend line drawn live in a browser.

`bridge` subscribes to the broker like any other subscriber and keeps what a display needs
(per-dial traces decimated into media-time bins, the group mean and SD per bin, metas, the
session clock, events); `server` serves the page in `static/` and pushes the bridge's updates
to every open page over a WebSocket. `bridge` needs no web library; `server` needs aiohttp
(the `watch` extra).
"""
