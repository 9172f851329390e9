"""The end-to-end benchmark behind `benchmarks/run.py` (`scripts/bench`), by job.

- common: names, the clock, the JSON answer line every process shares;
- roles: the child processes (the dials' writer, the subscriber, the bare publisher, LSL's outlets and inlets);
- child: the orchestrator's handle on one child process;
- options: one run's options, the daemon's command line, config and environment;
- runs: one configuration measured (the daemon, then the alternatives), and the highest sustained rate;
- analysis: latency, timestamp error and loss from what was written and what was received;
- report: the machine, the table, the JSON document;
- baseline: `--baseline REF`, an earlier commit's daemon exported and compared; rounds: `--rounds N`, medians.

Process statistics (CPU, RSS, machine load) are in benchmarks/procstats.py, shared with the other benchmarks.
"""
