"""What a server serves: the local folder of the model and what `GET /version` and the
`X-Model-Version` header say about it. The parent writes the current one to a file its workers
read when it changes (see `pipeline.serve.follow`)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.io import write_json

ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
VERSION_HEADER = b"x-model-version"


@dataclass(frozen=True)
class Served:
    model_dir: str
    generation: int = 0  # counts the versions this server has switched to
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None

    def public(self) -> dict:
        """The answer of GET /version."""
        names = ("name", "alias", "version", "run_id")
        return {name: getattr(self, name) for name in names}

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Served:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def alias_target(uri: str) -> tuple[str, str] | None:
    """(name, alias) of a `models:/<name>@<alias>` URI, else None."""
    match = ALIAS_URI.match(uri)
    return (match["name"], match["alias"]) if match else None


def named_version(uri: str) -> tuple[str | None, str | None]:
    """(name, version) of a `models:/<name>/<version>` URI, else (None, None)."""
    match = VERSION_URI.match(uri)
    return (match["name"], match["version"]) if match else (None, None)
