"""Helpers the tests share: real brokers, real subprocesses."""
