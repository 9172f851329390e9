"""Subscribers: clients that read only the topics in CONTRACT.md and turn them into something else.

- `recorder`: `daq record`, messages -> rows of one recording per session and dial, gaps and
  duplicates; its files in `record_files`, the merge of a shared group's parts in `record_merge`
  (the file format itself is `daq.recording`);
- `watch`: `daq watch`, the live page: its state (`watch.state`, `watch.trace`) apart from its IO
  (`watch.bridge` for MQTT and the fan-out to pages, `watch.server` for HTTP);
- `lsl`: `daq lsl`, each dial republished as a Lab Streaming Layer stream;
- `json_body`: a payload's JSON, or nothing (empty, or not JSON: counted and logged), for `lsl` and `watch`.

Each runs on a `daq.mqtt.Session` with `daq.mqtt.consume`, so all of them answer a refused login
the same way (exit 2 at start) and retry transient faults after they have once connected.
"""
