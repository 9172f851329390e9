"""Subscribers: clients that read only the topics in CONTRACT.md and turn them into something else.

`daq.subscribers.lsl` republishes each dial as a Lab Streaming Layer stream. Each runs on a
`daq.mqtt.Session` with `daq.mqtt.consume`, so all of them answer a refused login the same way
(exit 2 at start) and retry transient faults after they have once connected.
"""
