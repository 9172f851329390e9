"""The example configs shipped with dialdaq: installed as the package data `daq.config_files`
(setup.py maps this folder there), found through importlib.resources (daq/commands/config.py)."""
