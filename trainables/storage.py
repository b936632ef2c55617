"""Where runs are kept: a local directory (on a cluster, a mount every node shares) or a bucket URI (``s3://``,
``gs://``, ... anything `pyarrow.fs` opens; query options such as ``?endpoint_override=host:port`` pass through).

Ray Train and Tune take either form as ``storage_path`` (Ray 2.60 needs storage every node reaches for multi-node
checkpoints). Our own records (``sweep.json``, ``teacher.json``, options files) go through the same `pyarrow.fs`
filesystem Ray uses, and a model in a bucket is downloaded once per node into a local cache (`local_copy`) before
anything loads it. A *location* below is a local path or a URI, as a string.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "DECOUPLE_CACHE_DIR"
"""Local directory for models downloaded from buckets (default ``~/.cache/decoupled-sweep``)."""
COMPLETE = ".complete"
"""Written last into a downloaded copy: a copy without it was interrupted and is fetched again."""
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
"""The errors of a write that ran out of room: the device is full, or the user's quota is."""


class DiskFull(OSError):
    """A write ran out of room (`NO_SPACE`): ``filename`` is what could not be written. Raised by the atomic writes
    below, which leave nothing partial under that name, so what the location held before is intact."""


def no_space(err: BaseException, location: str | Path) -> BaseException:
    """``err`` as `DiskFull` naming ``location`` when it is a write that ran out of room; else ``err`` itself."""
    if isinstance(err, OSError) and not isinstance(err, DiskFull) and err.errno in NO_SPACE:
        return DiskFull(err.errno, os.strerror(err.errno), str(location))
    return err


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` names a bucket (``scheme://...``) rather than a local path."""
    return "://" in str(location)


def resolve(location: str | Path) -> str:
    """A local path made absolute (``~`` expanded); a URI unchanged."""
    return str(location) if is_uri(location) else str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """``location/part/...``; a URI keeps its query options at the end."""
    if not is_uri(location):
        return str(Path(location, *parts))
    base, sep, query = location.partition("?")
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)]) + sep + query


def parent(location: str) -> str:
    """The directory holding ``location`` (a URI keeps its query options)."""
    if not is_uri(location):
        return str(Path(location).parent)
    base, sep, query = location.partition("?")
    return base.rstrip("/").rsplit("/", 1)[0] + sep + query


def name(location: str) -> str:
    """The last component of ``location``."""
    return location.partition("?")[0].rstrip("/").rsplit("/", 1)[-1] if is_uri(location) else Path(location).name


def filesystem(location: str):
    """The `pyarrow.fs` filesystem holding ``location`` and the path inside it."""
    import pyarrow.fs as pafs

    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), resolve(location)


def exists(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def read_text(location: str) -> str:
    return read_bytes(location).decode("utf-8")


def read_record(location: str, fix: str) -> dict:
    """The JSON object in the file at ``location`` (one of our own records: sweep.json, teacher.json, a checkpoint's
    metrics.json); a `ValueError` naming the file, the line and ``fix`` when it is not one."""
    try:
        value = json.loads(read_text(location))
    except json.JSONDecodeError as err:
        raise ValueError(f"{location}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
                         f"{fix}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{location}: not UTF-8 text; {fix}") from None
    except RecursionError:
        raise ValueError(f"{location}: JSON nested too deeply to read; {fix}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{location}: not a JSON object; {fix}")
    return value


def write_bytes(location: str, data: bytes) -> None:
    """Write ``data`` to ``location``, creating its directory. Readers never see a partial file: a local file is
    written beside its target and renamed over it, a bucket object appears whole when its upload ends."""
    fs, path = filesystem(location)
    folder = path.rsplit("/", 1)[0]
    fs.create_dir(folder, recursive=True)
    if is_uri(location):
        with fs.open_output_stream(path) as stream:
            stream.write(data)
        return
    with staged(Path(path)) as staging:
        staging.write_bytes(data)


@contextlib.contextmanager
def staged(path: Path, staging: Path | None = None) -> Iterator[Path]:
    """The one atomic write of a local file: the block writes ``staging`` (default: a fresh temporary name beside
    ``path``), which is then flushed to disk and renamed over ``path``, so readers see the old file or the new one,
    never part of one. When the block fails, ``staging`` is removed and ``path`` is left as it was."""
    if staging is None:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
        os.close(handle)
        staging = Path(name)
    try:
        yield staging
        with open(staging, "rb") as written:
            os.fsync(written.fileno())
        os.replace(staging, path)
    except OSError as err:
        raise no_space(err, path) from err
    finally:
        staging.unlink(missing_ok=True)


def staged_copy(source: Path, target: Path) -> None:
    """Copy the directory ``source`` to a new directory ``target`` as `staged` writes a file: into a temporary
    directory beside ``target`` (a hidden ``.<name>.writing-*``), every file flushed to disk, then renamed to
    ``target``, so a directory under that name is always whole. When the copy fails, the temporary directory is
    removed; running out of room raises `DiskFull` naming ``target``."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.writing-"))
    try:
        for folder, _, files in os.walk(source):
            into = staging / Path(folder).relative_to(source)
            into.mkdir(exist_ok=True)
            for file in files:  # one by one: shutil.copytree gathers its errors into one without an errno
                shutil.copyfile(Path(folder, file), into / file)
                with open(into / file, "rb") as written:
                    os.fsync(written.fileno())
        os.rename(staging, target)
    except OSError as err:
        raise no_space(err, target) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(location: str, text: str) -> None:
    """Write ``text`` to ``location`` (as `write_bytes`)."""
    write_bytes(location, text.encode("utf-8"))


def find_files(location: str, name: str) -> list[str]:
    """Locations of every file called ``name`` under ``location`` (none if it does not exist)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return [_location_like(location, info.path) for info in found
            if info.type == pafs.FileType.File and info.base_name == name]


def location_of(path: str, storage: str) -> str:
    """A path inside ``storage``'s filesystem (e.g. a Ray `Checkpoint.path`, ``bucket/key`` for S3) as a location."""
    return _location_like(storage, path)


def _location_like(reference: str, path: str) -> str:
    if not is_uri(reference):
        return path
    scheme = reference.split("://", 1)[0]
    query = reference.partition("?")[2]
    return f"{scheme}://{path.lstrip('/')}" + (f"?{query}" if query else "")


def local_copy(location: str | Path) -> Path:
    """A local directory holding ``location``: the path itself when local, else a copy downloaded once into the
    node's cache (keyed by the URI; concurrent callers each download, the first complete copy wins)."""
    if not is_uri(location):
        return Path(resolve(location))
    import pyarrow.fs as pafs

    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "decoupled-sweep").expanduser()
    target = root / hashlib.sha1(str(location).encode()).hexdigest()[:16]
    if (target / COMPLETE).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".download-"))
    try:
        fs, path = filesystem(str(location))
        if fs.get_file_info(path).type != pafs.FileType.Directory:
            raise FileNotFoundError(f"{location}: no such directory in the bucket")
        pafs.copy_files(path, str(staging), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        (staging / COMPLETE).write_text(str(location))
        try:
            staging.rename(target)
        except OSError:  # another process finished first, or an interrupted copy sits there
            if not (target / COMPLETE).is_file():
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def check_folder_name(name: str, field_name: str, parent: str) -> None:
    """`ValueError` naming ``field_name`` unless ``name`` names one folder inside ``parent`` (the flag it goes under):
    not empty, no path separator, not ``.`` or ``..``, so nothing it names is written outside ``parent``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name != name.strip():
        raise ValueError(f"{field_name}={name!r} must be one folder name inside {parent} (no '/', '..' or "
                         "surrounding spaces); pick a plain name such as my-run")


def check_directory_target(location: str, field_name: str) -> None:
    """`ValueError` naming ``field_name`` when a local ``location`` cannot become a directory: it, or the nearest
    of its parents that exists, is a file. Bucket URIs are not checked (a prefix is never a file)."""
    if is_uri(location):
        return
    path = Path(location).expanduser()
    existing = nearest_existing(path)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise ValueError(f"{field_name}={location!r} {where}; pass a directory (new or existing)")
    check_writable(existing, location, field_name)


def nearest_existing(path: Path) -> Path | None:
    """``path`` or the nearest of its parents that exists (None if none does)."""
    return next((p for p in (path, *path.parents) if p.exists()), None)


def check_writable(existing: Path | None, location: str, field_name: str) -> None:
    """`ValueError` naming ``field_name`` when ``existing`` (``location`` or the nearest of its parents that exists)
    cannot be written: a read-only file system or no permission, found now instead of after Ray has started."""
    if existing is not None and not os.access(existing, os.W_OK):
        where = "" if existing == Path(location).expanduser() else f" ({existing})"
        raise ValueError(f"{field_name}={location!r}: cannot write there{where}: a read-only file system or no "
                         "permission; pass a writable location")
