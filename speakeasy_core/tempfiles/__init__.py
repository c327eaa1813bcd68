"""Temporary files that are closed before use and removed even when Windows holds them.

On Windows a file that any process has open without share-delete cannot be deleted
or replaced: ``PermissionError: [WinError 32]``. Antivirus scanners and the search
indexer open fresh files for a moment; a data loader may close its handle late. This
module writes every temp file completely (write, flush, fsync, close) before handing
out its path, and removes files with bounded, tenacity-driven retries that report
what happened instead of crashing a batch job:

- :func:`safe_delete` removes a file, retrying only transient lock errors;
- :func:`safe_write_manifest` writes a NeMo JSON Lines manifest, closed on return;
- :func:`atomic_write_bytes` / :func:`atomic_write_text` replace a file atomically;
- :class:`TempWorkspace` is a private per-job directory removed on exit;
- :func:`sweep_stale` removes the workspaces of processes that died.

Nothing is created or swept in a root before it is checked (:func:`trusted_root`): a real
directory (no symlink or junction), owned by this user and, on POSIX, not writable by
group or others. The default root must pass as it is; a root passed by the caller that is
another user's or writable by others (``/tmp`` itself, say) is not used directly but
through a private ``speakeasy_core-<uid>`` folder inside it, which must pass in turn.

All filesystem calls go through a :class:`FileOps` object (``ops=``); pass
:class:`~speakeasy_core.testing.WindowsLockSimulator` to test Windows locking on any OS.

The parts: ``_delete`` (one file), ``_write`` (complete files, manifests, atomic
replacement), ``_cleanup`` (trees, and what is retried at exit), ``_root`` (where
workspaces go, and the trust checks), ``_workspace`` (workspaces and the sweep).
"""

from .._fsops import FileOps, OsFileOps
from .._process import ProcessIdentity, process_alive
from .._retry import DEFAULT_POLICY, RetryPolicy
from ._cleanup import CleanupReport, deferred_cleanups, retry_deferred
from ._delete import DeleteOutcome, DeleteResult, safe_delete
from ._root import default_root, trusted_root
from ._workspace import OWNER_FILE, TempWorkspace, sweep_stale
from ._write import atomic_write_bytes, atomic_write_text, safe_write_manifest

__all__ = [
    "DEFAULT_POLICY",
    "OWNER_FILE",
    "CleanupReport",
    "DeleteOutcome",
    "DeleteResult",
    "FileOps",
    "OsFileOps",
    "ProcessIdentity",
    "RetryPolicy",
    "TempWorkspace",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_root",
    "deferred_cleanups",
    "process_alive",
    "retry_deferred",
    "safe_delete",
    "safe_write_manifest",
    "sweep_stale",
    "trusted_root",
]
