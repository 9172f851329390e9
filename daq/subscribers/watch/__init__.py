"""`daq watch`: the group's trend line drawn live in a browser.

`trace` and `state` are what a display needs, with no network: per-dial traces decimated into
media-time bins, the group mean and SD per bin, metas, the session clock, events, and the updates
a page is sent. `bridge` is the IO: it subscribes to the broker like any other subscriber, feeds
the state and pushes its updates to every listener; `server` serves the page in `static/` and
gives each open page a WebSocket listener. Only `server` needs aiohttp (the `watch` extra).
"""
