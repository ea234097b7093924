"""``manifest.json``: what export produced, and the checks everything downstream relies on.

The manifest names every artifact with its sha256, bytes, I/O tensors (name,
shape, dtype, int8 scale and zero point) and the preprocessing contract
version. The edge runner, the parity gate, the benchmarks and the Pi bundle
read it; nothing downstream hard-codes a scale or a shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import contract
from .fsutil import read_json, sha256_file
from .runtime import ModelError


class NoManifest(ModelError):
    """There is no manifest where one was looked for."""


MANIFEST = "manifest.json"
SCHEMA = 1


@dataclass(frozen=True)
class Artifact:
    key: str
    file: str
    format: str
    precision: str
    entry: dict
    root: Path

    @property
    def path(self) -> Path:
        return self.root / self.file

    def verify(self) -> None:
        """Raise ModelError unless the file exists with the size and sha256 the manifest records."""
        p = self.path
        if not p.is_file():
            raise ModelError(f"{p}: listed in {self.root / MANIFEST} but missing; re-run `make export`")
        size = p.stat().st_size
        if size != self.entry.get("bytes"):
            raise ModelError(
                f"{p}: {size} bytes, the manifest says {self.entry.get('bytes')}; the file changed since export, "
                "re-run `make export`"
            )
        digest = sha256_file(p)
        if digest != self.entry.get("sha256"):
            raise ModelError(f"{p}: sha256 {digest[:12]}… does not match the manifest's "
                             f"{str(self.entry.get('sha256'))[:12]}…; the file changed since export, re-run `make export`")


@dataclass(frozen=True)
class Manifest:
    path: Path
    data: dict

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def artifacts(self) -> list[Artifact]:
        return [
            Artifact(a["key"], a["file"], a["format"], a["precision"], a, self.root) for a in self.data["artifacts"]
        ]

    def get(self, key: str) -> Artifact:
        for a in self.artifacts:
            if a.key == key or a.file == key:
                return a
        listed = ", ".join(a.key for a in self.artifacts) or "none"
        raise ModelError(f"{self.path}: no artifact {key!r} (it lists {listed}); re-run `make export`")

    def find_file(self, path: str | os.PathLike) -> Artifact | None:
        p = Path(path).resolve()
        for a in self.artifacts:
            if a.path.resolve() == p:
                return a
        return None

    def default(self) -> Artifact:
        """The artifact the runner uses when none is named: int8 TFLite."""
        return self.get("tflite_int8")


def load_manifest(path_or_dir: str | os.PathLike) -> Manifest:
    """Read and sanity-check a manifest (a file, or a directory holding manifest.json)."""
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / MANIFEST
    if not p.is_file():
        raise NoManifest(f"{p}: no manifest; run `make export` first")
    data = read_json(p, ModelError, "re-run `make export`", what="manifest")
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        raise ModelError(f"{p}: not an mnist-edge manifest (no 'artifacts' list); re-run `make export`")
    version = data.get("contract_version")
    if version != contract.CONTRACT_VERSION:
        raise ModelError(
            f"{p}: made for preprocessing contract v{version}, this runner speaks v{contract.CONTRACT_VERSION}; "
            "re-export the model with this version"
        )
    return Manifest(p, data)
