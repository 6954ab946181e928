"""Writing files atomically: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cgraph_cli.errors import CgraphError


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    shown = p = Path(path)
    if "\x00" in str(p):
        raise CgraphError(f"cannot write {str(p)!r}: a file name cannot contain a NUL byte")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if p.is_symlink() and p.resolve().is_file():  # write through the link, atomically at its target
        p = p.resolve()
    if p.exists() and not p.is_file() and not p.is_dir():
        # a device or a pipe (/dev/stdout, /dev/null, a FIFO): cannot be replaced, only written to
        try:
            with open(p, "wb") as f:
                f.write(raw)
        except OSError as e:
            raise CgraphError(f"cannot write {shown}: {e.strerror or e}") from None
        return
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise CgraphError(f"cannot write {shown}: the folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise CgraphError(f"cannot write {shown}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fchmod(f.fileno(), _mode_for(p))  # mkstemp makes 0600; a new file gets the usual 0666 & ~umask
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CgraphError(f"cannot write {shown}: {e.strerror or e}") from None
        raise


def _mode_for(p: Path) -> int:
    """The permission bits for ``p``: those of the file it replaces, else 0666 minus the umask."""
    try:
        return p.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
