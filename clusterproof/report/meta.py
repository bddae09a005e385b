"""The metadata of one run (``metadata.json``): who ran what, where, with which versions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from clusterproof.errors import ParseError
from clusterproof.report.scrub import scrub_obj


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.isoformat()


@dataclass
class RunMeta:
    """What one run of the suites was: the cluster, the nodes, the options and the versions.

    ``gid_index`` is the GID index the nodes agreed on (the detected consensus). ``extra`` holds facts that are shown,
    never judged (``exitstatus``, ``gid_source``...; scrubbed when written): the verdict comes from the findings.
    """

    run_id: str
    cluster: str
    started_at: datetime
    finished_at: datetime | None = None
    standin: bool = False
    launcher: str | None = None
    gid_index: int | None = None
    nodes: list[str] = field(default_factory=list)
    pytest_args: list[str] = field(default_factory=list)
    git_sha: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Return the metadata as indented JSON, times in ISO 8601 UTC, every string scrubbed of secrets."""
        data = asdict(self)
        data["started_at"] = _iso(self.started_at)
        data["finished_at"] = _iso(self.finished_at)
        return json.dumps(scrub_obj(data), indent=2, sort_keys=False, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "metadata.json") -> RunMeta:
        """Parse ``to_json``'s output.

        Raises:
            ParseError: the text is not JSON, or a field is missing or has the wrong type; the message names
                ``source`` and the field.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ParseError(f"{source}: not JSON ({e})") from e
        if not isinstance(data, dict):
            raise ParseError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for name in ("run_id", "cluster", "started_at"):
            if name not in data:
                raise ParseError(f"{source}: {name}: missing")
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for name in ("started_at", "finished_at"):
            value = kwargs.get(name)
            if value is None:
                continue
            try:
                dt = datetime.fromisoformat(str(value))
            except ValueError as e:
                raise ParseError(f"{source}: {name}: not an ISO 8601 time: {value!r}") from e
            kwargs[name] = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
        expected: dict[str, type | tuple[type, ...]] = {
            "run_id": str,
            "cluster": str,
            "standin": bool,
            "nodes": list,
            "pytest_args": list,
            "versions": dict,
            "extra": dict,
            "launcher": (str, type(None)),
            "git_sha": (str, type(None)),
            "gid_index": (int, type(None)),
        }
        for name, typ in expected.items():
            if name in kwargs and not isinstance(kwargs[name], typ):
                raise ParseError(f"{source}: {name}: wrong type {type(kwargs[name]).__name__}")
        return cls(**kwargs)
