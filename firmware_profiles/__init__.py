"""The firmware profiles shipped with dialdaq: installed as the package data `daq.firmware_profiles`
(setup.py maps this folder there), found through importlib.resources (daq/profiles/loader.py)."""
