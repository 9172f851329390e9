"""Load firmware profiles from TOML files, and the registry of all profiles a station can use.

Every error is a `ProfileError` naming the file, the dotted key and the fix. A loaded profile
is a `LoadedProfile`: the validated `Profile` (pure data, the same whatever file it came from)
together with the file it was read from, so messages and `daq profiles list` can point at it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from daq.exceptions import ProfileError
from daq.package_data import shipped_folder
from daq.profiles.framing_registry import FRAMINGS
from daq.profiles.model import Profile
from daq.profiles.model_types import SPEC_VERSION, ProfileProblem
from daq.seams import one_of
from daq.validation import dotted, raise_config_error


def bundled_dir() -> Path:
    """The folder of the profiles shipped with dialdaq: the package data `daq.firmware_profiles`
    (daq.package_data), wherever dialdaq is installed."""
    return shipped_folder("daq.firmware_profiles", "firmware_profiles")


BUNDLED_DIR = bundled_dir()
"""The profiles shipped with dialdaq (see `bundled_dir`)."""


@dataclass(frozen=True, slots=True)
class LoadedProfile:
    """A validated profile and the file it came from (None when built from a dict in memory)."""

    profile: Profile
    path: Path | None

    @property
    def id(self) -> str:
        return self.profile.id

    def describe(self) -> str:
        return f"{self.profile.id} ({self.path or '<memory>'})"


def load_profile(path: str | Path) -> LoadedProfile:
    """Read and validate one profile file. Raises ProfileError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(path, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(path, None, f"cannot read it: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r" \(at line (\d+), column (\d+)\)", str(exc))
        if where is None:
            raise ProfileError(path, None, f"TOML syntax error: {exc}") from None
        message = str(exc).replace(where.group(0), "")
        raise ProfileError(
            path, f"line {where.group(1)}", f"TOML syntax error: {message} (column {where.group(2)})"
        ) from None
    return LoadedProfile(profile_from_dict(data, path), path)


def profile_from_dict(data: Mapping[str, Any], file: str | Path | None = None) -> Profile:
    """Validate a profile given as parsed TOML. `file` only goes into error messages."""
    _check_spec(data, file)
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        _raise(file, exc, data)


def _check_spec(data: Mapping[str, Any], file: str | Path | None) -> None:
    # Before the model: a newer file's unknown keys must not hide that dialdaq is too old.
    spec = data.get("spec")
    if spec is None:
        raise ProfileError(
            file, "spec", f"required key is missing: add spec = {SPEC_VERSION} (the profile format version)"
        )
    if not isinstance(spec, int) or isinstance(spec, bool):
        raise ProfileError(file, "spec", f"must be a whole number, e.g. spec = {SPEC_VERSION} (got {spec!r})")
    if spec > SPEC_VERSION:
        raise ProfileError(
            file,
            "spec",
            f"this profile needs dialdaq profile spec {spec}; this dialdaq reads {SPEC_VERSION}: upgrade dialdaq",
        )
    if spec < 1:
        raise ProfileError(file, "spec", f"there is no profile spec {spec}: write spec = {SPEC_VERSION}")


def _raise(file: str | Path | None, exc: ValidationError, data: Mapping[str, Any]) -> NoReturn:
    """Turn pydantic's errors into a ProfileError that names the key as the file spells it."""
    framing = data.get("framing")
    kind = framing.get("kind") if isinstance(framing, dict) else None

    def user_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
        # The framing union puts its tag into the location ('framing', 'line', 'pattern').
        if len(loc) > 1 and loc[0] == "framing" and loc[1] == kind:
            return (loc[0], *loc[2:])
        return loc

    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = user_loc(tuple(first["loc"]))
    if first["type"] == "union_tag_not_found":
        listed = one_of([kind.name for kind in FRAMINGS])
        raise ProfileError(file, "framing.kind", f"required key is missing: add kind = {listed}")
    if first["type"] == "union_tag_invalid":
        raise ProfileError(file, "framing.kind", first["msg"])
    if first["type"] == "extra_forbidden":
        raise ProfileError(
            file,
            dotted(loc),
            "unknown key: remove it or check its spelling (`daq profiles schema` lists the keys)",
        )
    problem = (first.get("ctx") or {}).get("error")
    if isinstance(problem, ProfileProblem):
        key = dotted(loc)
        if problem.key:
            sep = "" if problem.key.startswith("[") or not key else "."
            key = f"{key}{sep}{problem.key}"
        raise ProfileError(file, key or None, problem.problem)
    fixed = [{**e, "loc": user_loc(tuple(e["loc"]))} for e in errors]
    raise_config_error(file, ValidationError.from_exception_data(exc.title, fixed), error_class=ProfileError)  # type: ignore[arg-type]


class ProfileRegistry:
    """All profiles a station can use, by id: the bundled ones plus any extra directories."""

    def __init__(self, profiles: Sequence[LoadedProfile] = ()) -> None:
        self._by_id: dict[str, LoadedProfile] = {}
        for loaded in profiles:
            self.add(loaded)

    @classmethod
    def load(cls, extra_dirs: Sequence[str | Path] = (), *, bundled: bool = True) -> ProfileRegistry:
        """Load `*.toml` from the bundled folder and `extra_dirs`. Raises ProfileError."""
        registry = cls()
        dirs = ([BUNDLED_DIR] if bundled else []) + [Path(d) for d in extra_dirs]
        for folder in dirs:
            if not folder.is_dir():
                raise ProfileError(folder, None, "profile directory not found: check the path")
            for path in sorted(folder.glob("*.toml")):
                registry.add(load_profile(path))
        return registry

    def add(self, loaded: LoadedProfile) -> None:
        """Add a profile; an id that is taken already is a ProfileError naming both files."""
        known = self._by_id.get(loaded.id)
        if known is not None:
            if known.path is not None and loaded.path is not None and known.path.resolve() == loaded.path.resolve():
                return  # the same file reached twice (a directory given twice)
            raise ProfileError(
                loaded.path,
                "id",
                f"the id {loaded.id!r} is used by {known.path or '<memory>'} already: give one of them another id",
            )
        self._by_id[loaded.id] = loaded

    def get(self, profile_id: str) -> LoadedProfile:
        """The profile with this id; unknown -> ProfileError listing the known ids, closest first."""
        try:
            return self._by_id[profile_id]
        except KeyError:
            pass

        def closeness(known: str) -> float:
            return difflib.SequenceMatcher(None, profile_id.lower(), known.lower()).ratio()

        ranked = sorted(self._by_id, key=lambda k: (-closeness(k), k))
        listed = ", ".join(ranked) if ranked else "none"
        raise ProfileError(
            None,
            "profile",
            f"unknown profile {profile_id!r}: known profiles are {listed} (or add a file to a --dir)",
        )

    def all(self) -> list[LoadedProfile]:
        """Every profile, sorted by id."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def match_usb(self, vid: int, pid: int, product: str | None = None) -> list[LoadedProfile]:
        """Profiles whose [match] fits a USB device, the most specific first.

        A profile fits when its `usb` list holds VID:PID (or is empty) and, if it lists
        `product` substrings, `product` contains one (case-insensitive; an unknown product
        fits no such profile). A profile without any [match] fits nothing.
        """
        hits: list[tuple[int, str, LoadedProfile]] = []
        name = (product or "").lower()
        for loaded in self._by_id.values():
            match = loaded.profile.match
            if not match.usb and not match.product:
                continue
            if match.usb and (vid, pid) not in match.usb_ids():
                continue
            if match.product and not (product and any(p.lower() in name for p in match.product)):
                continue
            score = (1 if match.usb else 0) + (1 if match.product else 0)
            hits.append((-score, loaded.id, loaded))
        return [loaded for *_, loaded in sorted(hits, key=lambda h: (h[0], h[1]))]

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self._by_id

    def __iter__(self) -> Iterator[LoadedProfile]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._by_id)
