"""Files: written atomically (a temporary file in the same folder, then a rename) and read within bounds."""

from __future__ import annotations

import io
import os
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
    import tempfile  # (only to write a file: 4 ms of start-up otherwise)

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


# -- reading ---------------------------------------------------------------------------------------------------------

READ_CHUNK = 1 << 20


def open_input(path: str, what: str = "", kind: str = "a file"):
    """``path`` opened for reading bytes, with clear errors; ``what`` prefixes them (``--at-file: ``), ``kind``
    names what a folder is not. The caller bounds what it reads (:func:`read_bounded`): ``path`` may be
    /dev/zero, a FIFO or ``<(yes)``, which never end."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise CgraphError(f"{what}no such file: {path}") from None
    except IsADirectoryError:
        raise CgraphError(f"{what}{path} is a folder, not {kind}") from None
    except OSError as e:
        raise CgraphError(f"{what}cannot read {path}: {e.strerror or e}") from None
    except ValueError:  # a NUL byte in the name (possible through the Python API, not a shell)
        raise CgraphError(f"{what}cannot read {path!r}: a file name cannot contain a NUL byte") from None


def regular_size(f) -> int | None:
    """The size of the open file ``f`` if it is a regular file (a size known before reading), else None."""
    import stat

    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def read_bounded(f, limit: int, chunk: int = READ_CHUNK) -> bytes:
    """At most ``limit + 1`` bytes of the binary stream ``f``, read ``chunk`` bytes at a time.

    A result longer than ``limit`` means the input is over its limit; the rest is never read, so
    /dev/zero, ``<(yes)`` or an endless stdin are refused in bounded time and memory."""
    parts: list[bytes] = []
    total = 0
    while total <= limit:
        try:
            data = f.read(min(chunk, limit + 1 - total))
        except OSError as e:
            name = getattr(f, "name", "the input")
            raise CgraphError(f"cannot read {name}: {e.strerror or e}") from None
        if not data:
            break
        parts.append(data)
        total += len(data)
    return b"".join(parts)


def user_cache_home() -> Path:
    """``$XDG_CACHE_HOME``, or ``~/.cache`` when it is unset, empty or relative (the XDG spec says to ignore a
    relative one: it would put cache files in the current folder)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base)
