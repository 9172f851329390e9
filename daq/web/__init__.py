"""The one web layer of the local pages (`daq watch`, `daq rate`, `daq review`): one door for all three.

- `door`: the rules, with no aiohttp: loopback by default, a token on any other address (printed,
  or `DAQ_PAGE_TOKEN`), a loopback `Host` on loopback, the page's own `Origin` on every WebSocket
  and POST, the per-page `Limits`; `page_url`, the URL a command prints.
- `app`: `page_app` (a page, its files and routes, every request through the door as a
  middleware), `video_response`, `serve` (with work that runs alongside, as `daq watch`'s bridge).
- `page_socket`: `PageSocket`, a page's WebSocket bounded both ways (slow pages dropped).

Only `app` and `page_socket` need aiohttp (the `watch` extra); nothing is imported here, so
`daq.web.door` stays importable without it.
"""
