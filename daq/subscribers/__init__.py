"""Subscribers: clients that read a station's topics (CONTRACT.md) and nothing else.

- `recorder`: `daq record`, messages -> rows of one recording per session and dial, gaps and
  duplicates; its files in `record_files`, the merge of a shared group's parts in `record_merge`
  (the file format itself is `daq.recording`);
- `watch`: `daq watch`, the live page: its state (`watch.state`, `watch.trace`) apart from its IO
  (`watch.bridge` for MQTT and the fan-out to pages, `watch.server` for HTTP).
"""
