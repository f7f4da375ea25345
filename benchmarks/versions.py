"""The versions stored with every row: what can change a result."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def git_commit(folder: str | Path = REPO) -> str | None:
    """The commit checked out in ``folder`` (12 hex digits), or None when git or the repository
    is absent. ``folder`` must be the repository's root (an installed copy inside some other
    repository has no commit); ``git rev-parse HEAD`` reads packed refs and worktrees as git does."""
    if not (Path(folder) / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit[:12] if done.returncode == 0 and commit else None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions that can change a result: Python, torch, numpy, this package, its git commit."""
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__}
    try:
        from importlib.metadata import version
        out["diffusion-restore"] = version("diffusion-restore")
    except Exception:  # noqa: BLE001 - not installed: run from a checkout
        pass
    commit = git_commit()
    if commit is not None:
        out["git"] = commit
    return out
