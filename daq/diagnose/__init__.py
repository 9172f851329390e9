"""Diagnosis: is a dial ready, what does it send, and can that be kept and replayed.

- doctor: `daq doctor`, per configured dial: present, readable, held by whom, what to do.
- listen: `daq doctor --listen S`, open each ready dial and decode what it sends.
- capture: the capture file (exactly what a device sent, with read times), written and read.
- capture_session: `daq profiles capture`, record one dial, guided or for S seconds.
- replay: a capture through a profile, to the readings `daq run` would publish; guided checks.
"""
