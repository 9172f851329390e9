"""One module per `daq` subcommand; see `daq.cli`."""
