"""Only what pyproject.toml cannot say: the bundled profiles are the package data `daq.firmware_profiles`,
read from the repository's firmware_profiles/ folder (their one source; see daq/profiles/loader.py), and
the example configs the package data `daq.config_files`, from config/ (see daq/commands/config.py)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["daq", "daq.*"]), "daq.firmware_profiles", "daq.config_files"],
    package_dir={"daq.firmware_profiles": "firmware_profiles", "daq.config_files": "config"},
)
