"""Writing a file atomically, as :func:`numbanet.save` does.

Writes are atomic: the file is written to a hidden temporary file
``.{name}.{32 hex digits}.tmp`` in the same folder, flushed, fsync'ed and
moved over ``path`` with :func:`os.replace`, so ``path`` holds either the old
file or the complete new one, never a part.

* Stale temporary files.  A save killed half way (``kill -9``, power loss)
  leaves its temporary file behind; the next save to the same ``path``
  removes it.  It removes only regular files named exactly as above for
  that ``path`` (no other name, no symbolic link, no folder), and only
  when no process holds a lock on them and they were last modified more
  than :data:`numbanet.config.STALE_AFTER` seconds ago.  Every save holds an exclusive
  :func:`fcntl.flock` lock on its temporary file while it writes it; the
  kernel drops the lock when the process dies, however it dies, so a
  locked file belongs to a save still running (on this machine or, on file
  systems that share locks such as NFS, another one).  The age rule covers
  the instants before the lock is taken and after it is released (between
  closing the file and renaming it), file systems without locks, and
  platforms without :mod:`fcntl` (on Windows, moreover, an open file cannot
  be deleted).
* Permissions.  Saving over an existing file keeps its permission bits
  (a ``0o600`` file stays ``0o600``); a new file gets ``0o666`` less the
  umask, as :func:`open` gives.  An existing file that is read-only -- no
  write bit for its owner, or not writable by this user -- is not
  replaced: :class:`PermissionError`, and the file is unchanged.  (Owner
  and group are not copied: the new file belongs to whoever saves.)
* Long names.  Where ``.{name}.{32 hex digits}.tmp`` would exceed the
  folder's longest file name (NAME_MAX, 255 bytes on most file systems), the
  temporary name holds a prefix of ``name`` and a digest of the whole
  instead, so every name the folder accepts can be saved.
* Errors.  A read-only file system is reported as such (:data:`errno.EROFS`),
  whatever the file's own permissions.  File system problems raise :class:`OSError` subclasses
  (:class:`FileNotFoundError` for a missing folder, :class:`PermissionError`,
  ...) whose ``filename`` and message are the ``path`` passed, never the
  temporary file; no temporary file is left behind.  Paths may be ``str``,
  ``bytes`` or :class:`os.PathLike`.
"""

import errno
import hashlib
import os
import re
import stat
import time
import uuid

from numbanet import config

try:
    import fcntl
except ImportError:  # Windows: no flock; an open file cannot be deleted there anyway
    fcntl = None


def write_atomically(path, write):
    """Write the file at ``path`` by calling ``write(f)`` on a binary file; return ``path`` as a str.

    ``path`` holds the old file or the complete new one, never a part; see the module notes.
    """
    path = os.fsdecode(path)
    folder, base = os.path.split(os.path.abspath(path))
    _refuse_read_only_file_system(folder, path)
    mode = _existing_mode(path)
    stem = _temp_stem(folder, base)
    _remove_stale_temps(folder, stem)
    tmp = os.path.join(folder, f".{stem}.{uuid.uuid4().hex}.tmp")
    try:
        # O_EXCL: never write through someone else's file.  A new file gets 0o666 less the umask, as
        # open() gives; a replacement starts with at most the old bits and gets exactly them below.
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666 if mode is None else mode
        )
    except OSError as e:
        raise _naming(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # held until closed: "a save is writing this"
                except OSError:
                    pass  # a file system without locks: the age rule alone protects this file
            write(f)
            f.flush()
            if mode is not None:
                os.chmod(tmp, mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _naming(path, e) from None
        raise
    _fsync_folder(folder)
    return path


def _naming(path, error):
    """``error`` as the same kind of OSError, naming the user's ``path`` instead of the temporary file."""
    if error.errno is None:
        return error
    return OSError(error.errno, f"cannot save the model: {error.strerror}", path)


# ".", "." before the 32 hex digits and ".tmp": what a temporary name adds to the file's own name.
_TEMP_EXTRA = 38


def _temp_stem(folder, base):
    """Return what stands for ``base`` in its temporary names: ``base``, or a prefix and a digest of it.

    The prefix and digest where ``.{base}.{hex}.tmp`` would be longer than the
    folder's longest file name (NAME_MAX).
    """
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    raw = os.fsencode(base)
    if len(raw) + _TEMP_EXTRA <= name_max:
        return base
    digest = hashlib.sha256(raw).hexdigest()[:16]
    keep = max(0, name_max - _TEMP_EXTRA - len(digest) - 1)
    return os.fsdecode(raw[:keep]).encode("utf-8", "ignore").decode("utf-8", "ignore") + "~" + digest


def _refuse_read_only_file_system(folder, path):
    """Refuse a folder on a read-only file system, saying so: no permission (chmod) can help there."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows), or the folder is missing: os.open will say
        return
    if read_only:
        raise OSError(
            errno.EROFS,
            "cannot save the model: the folder is on a read-only file system; save to a writable location",
            path,
        )


def _existing_mode(path):
    """Permission bits of the regular file at ``path``, None when there is none; refuse a read-only one."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # nothing there, or the folder is unusable: creating the temporary file will say so
    if not stat.S_ISREG(st.st_mode):
        return None
    mode = stat.S_IMODE(st.st_mode) & 0o777
    # root may write anything, so test the owner's write bit explicitly as well as os.access.
    if not mode & stat.S_IWUSR or not os.access(path, os.W_OK):
        what = "read-only" if not mode & stat.S_IWUSR else "not writable by this user"
        raise PermissionError(
            errno.EACCES,
            f"the file is {what} (mode {mode:#o}); numbanet does not replace a file it may not "
            "write. Make it writable (chmod u+w) or save to another path",
            path,
        )
    return mode


def _remove_stale_temps(folder, stem):
    """Delete the temporary files that killed saves to the file of ``stem`` left behind; best effort, never raises."""
    own = re.compile(rf"\.{re.escape(stem)}\.[0-9a-f]{{32}}\.tmp")
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if own.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for entry in entries:
        try:
            # O_RDWR: NFS emulates flock with POSIX locks, whose exclusive kind needs a writable file
            fd = os.open(entry.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or time.time() - st.st_mtime < config.STALE_AFTER:
                    continue
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a save holds the lock
            finally:
                os.close(fd)
            os.unlink(entry.path)
        except OSError:
            continue


def _fsync_folder(folder):
    """Make the rename durable (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
