"""The station: the daemon that reads the dials and publishes their samples (`daq run`).

- `station`: `Station`, the wiring: builds the parts below, connects them, runs them;
- `assembly`, `profiled_dials`: from config to devices (simulated; through firmware profiles);
- `device_reader`: `DeviceSetup` and `DeviceReader`, one device read, decoded and routed to its dials;
- `dial_pipeline`: `DialPipeline`, one dial's reading -> sample -> outbox (the hot path);
- `session_state`: `SessionState`, the session id by read time and the media clock in use;
- `clock_stage`: `ClockStage`, the media clock's background job and the MQTT messages it follows;
- `control`: `StationControl`, the `cmd/<verb>` requests;
- `health`: `HealthReporter`, the retained `health`;
- `publisher`: `Publisher`, the station's MQTT side: outbox -> broker, retained state kept across
  reconnects, control messages, refusals;
- `announcer`, `payloads`, `status_guard`: what the station publishes about itself, from the
  contract's models;
- `broker_io`, `publisher`: the only places here that see the MQTT layer (`daq.mqtt`).

Import from the modules (`from daq.station.station import Station`); this package file imports nothing,
so importing one part never loads the others.
"""
