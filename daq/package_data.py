"""Folders dialdaq reads at run time that live outside `daq/` in the repository: the bundled
firmware profiles (firmware_profiles/) and the example configs (config/). setup.py maps each to a
package (`daq.firmware_profiles`, `daq.config_files`), so a wheel or pipx install carries them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_folder(package: str, in_repository: str) -> Path:
    """The folder of `package`'s data, wherever dialdaq is installed (a wheel: site-packages/daq/...;
    editable: the repository's folder, which setup.py maps there), or `in_repository` of a clone
    run from PYTHONPATH (or an editable install older than the mapping)."""
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / in_repository
