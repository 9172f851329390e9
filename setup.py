"""Only what pyproject.toml cannot say: the bundled profiles are the package data `daq.firmware_profiles`,
read from the repository's firmware_profiles/ folder (their one source; see daq/profiles/loader.py), and
the example configs the package data `daq.config_files`, from config/ (see daq/commands/config.py)."""

from setuptools import find_namespace_packages, find_packages, setup

# config/ and each folder in it (a folder of data is a package to setuptools); pyproject.toml's
# package-data ships every file of them.
CONFIG = [
    "daq.config_files",
    *(
        f"daq.config_files.{p}"
        for p in find_namespace_packages(where="config", exclude=["__pycache__", "*.__pycache__"])
    ),
]

# The pages' static folders: data only, so packages to setuptools too (pyproject.toml ships their files).
STATIC = ["daq.study.static", "daq.subscribers.watch.static"]

setup(
    packages=[*find_packages(include=["daq", "daq.*"]), *STATIC, "daq.firmware_profiles", *CONFIG],
    package_dir={"daq.firmware_profiles": "firmware_profiles", "daq.config_files": "config"},
)
