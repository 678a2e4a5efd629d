"""Output safety: nothing a command writes can destroy what it read or what a user owns.

Every command that writes (`irtool-opt -o`, `irtool import -o`, `irtool quantize -o`,
`irtool-run --dump-logits`, `irtool compile -o`, `-t c-project{dir=...}`) goes through one
`Outputs` transaction:

* each file is written to a temporary file beside its destination and renamed into place only
  when the whole command succeeded, so a failing run leaves the old file (or no file) behind,
  never an empty or half-written one (a device or FIFO, `-o /dev/null`, is written into then,
  never replaced);
* a destination that is one of the inputs (or an input's weight store) is refused, comparing
  resolved paths (symlinks followed) and, for existing files, the inode (hard links);
* an output of a known `Kind` (a module, a weight store, a report) replaces only an earlier
  output of that kind or an empty file, never a user's other file, and only a weight store may
  be named `*.weights.npz` (a module may read a file of that name); an empty path is refused;
* a project directory is written only if it does not exist, is empty, or holds the manifest
  `.irtool-manifest` (the list of files irtool wrote there) - or with `--force`; irtool deletes
  only files its manifest lists, never a user's file (and a folder only once those files were
  all it held);
* side files (the weight store `irtool-opt -p quantize` writes) go beside the requested output;
  the rest of the command (later passes, `--check-numerics`) reads them back from their
  temporary files, so reading one is not reading an input.

Drivers open a transaction with `writing(...)`; passes and emitters that write ask for the
current one (`current()`), so the driver's inputs and `--force` reach them without plumbing.
Outside any transaction (the Python API) each write commits on its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from irtool.errors import IrtoolError

MANIFEST = ".irtool-manifest"
_MANIFEST_HEADER = "# files written by irtool (it deletes or replaces only these)\n"
STORE_SUFFIX = ".weights.npz"
"""The name of a weight store (irtool.weights): a module refers to its store by this name."""
_HEAD_BYTES = 4096


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _same_file(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _make_parent(dest: Path, what: str) -> None:
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise IrtoolError(f"cannot write {what} '{dest}': '{parent}' exists and is not a "
                          "directory") from None
    except NotADirectoryError:
        raise IrtoolError(f"cannot write {what} '{dest}': a component of '{parent}' is a file, "
                          "not a directory") from None
    except OSError as e:
        raise IrtoolError(f"cannot create the directory '{parent}' for {what} '{dest}': "
                          f"{_reason(e)}") from None


@dataclass(frozen=True)
class Kind:
    """A kind of output file, and what an existing file must be for irtool to replace it: an
    earlier output of the same kind (or an empty file), so a mistyped `-o` never destroys a
    user's file of another kind. Only the weight-store kind may have a `*.weights.npz` name."""

    description: str
    """What an existing file is not, in the refusal: "... it is not {description}"."""
    looks_ours: Callable[[bytes], bool]
    """True for the first bytes (up to 4 KiB) of an earlier output of this kind."""
    example: str
    """A file name to suggest instead of a weight store's."""
    store: bool = False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # --syntax-highlight
_IR_START = re.compile(r'"?[A-Za-z_][\w$]*\.[\w$.]+"?|module\b|%|[#!][A-Za-z_][\w$.]* = ')


def looks_like_ir(head: bytes) -> bool:
    """MLIR text: after blank and `//` lines, an op (`builtin.module`, `"builtin.module"()`,
    `func.func`, `%0 = ...`) or an alias (`#map = ...`), as irtool, irtool-opt and xdsl-opt
    print it."""
    if b"\0" in head:
        return False
    for line in head.decode("utf-8", errors="replace").splitlines():
        line = _ANSI.sub("", line).strip()
        if line and not line.startswith("//"):
            return _IR_START.match(line) is not None
    return False


IR_TEXT = Kind("IR text (an .mlir module)", looks_like_ir, "OUT.mlir")
WEIGHT_STORE = Kind("a weight store (an .npz archive)", lambda head: head.startswith(b"PK"),
                    "OUT.weights.npz", store=True)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_HEAD_BYTES)
    except OSError as e:
        raise IrtoolError(f"cannot read '{path}' to see whether irtool may replace it: "
                          f"{_reason(e)}") from None


def check_destination(dest: str | os.PathLike[str], what: str = "output",
                      kind: Kind | None = None) -> Path:
    """`dest` as a Path, or an error if irtool must not write it: an empty path; for an
    output of a known kind, a weight store's name or an existing file of another kind.
    Commands call it before their work too, so a bad `-o` costs nothing."""
    if not os.fspath(dest).strip():
        raise IrtoolError(f"the path of the {what} is empty (''): give a file name")
    d = Path(dest)
    if kind is None:
        return d
    if d.name.endswith(STORE_SUFFIX) and not kind.store:
        raise IrtoolError(f"refusing to write the {what} to '{d}': a name ending in "
                          f"{STORE_SUFFIX} is a weight store's (a module may read it); give "
                          f"the {what} another name, e.g. {kind.example}")
    if d.is_file():
        head = _head(d)
        if head and not kind.looks_ours(head):
            raise IrtoolError(f"refusing to replace '{d}' with the {what}: it is not "
                              f"{kind.description}, so not an earlier output of irtool (the "
                              "only files it replaces); choose another path, or delete the "
                              "file first if it may go")
    return d


def check_output(dest: str | os.PathLike[str], what: str = "output",
                 kind: Kind | None = None) -> Path:
    """`check_destination`, and not one of the running command's inputs declared so far: what
    a command checks before its work (`Outputs.file` checks again when it writes)."""
    d = check_destination(dest, what, kind)
    outputs = current()
    if outputs is not None:
        outputs._refuse_input(d, outputs.inputs)
    return d


@dataclass
class _PendingFile:
    dest: Path
    temp: Path
    own: bool = False
    """Written now and read back by the rest of the command (a pass's new weight store, which
    the next passes and --check-numerics read from `temp`): not an input when it is read."""
    special: bool = False
    """`dest` is a device, FIFO or socket (`-o /dev/null`): written into on commit, never
    replaced (a rename would put a regular file in place of /dev/null)."""


@dataclass
class _PendingDir:
    dest: Path
    temp: Path
    force: bool


@dataclass
class Outputs:
    """The outputs of one command, committed together (see the module docstring)."""

    inputs: list[Path] = field(default_factory=list)
    force: bool = False
    primary: Path | None = None
    """The requested output file; side files go beside it (the current directory if none)."""
    files: list[_PendingFile] = field(default_factory=list)
    dirs: list[_PendingDir] = field(default_factory=list)

    # -- inputs ---------------------------------------------------------------------------------

    def add_input(self, path: str | os.PathLike[str], what: str = "input") -> None:
        """Declare a file the command reads; an output already registered on it is refused,
        except a side file of this command read back (its data is this command's own)."""
        p = Path(path)
        if any(f.own and _same_file(f.dest, p) for f in self.files):
            return
        self.inputs.append(p)
        for f in self.files:
            self._refuse_input(f.dest, [p], what)

    def _refuse_input(self, dest: Path, inputs: Iterable[Path], what: str = "input") -> None:
        for i in inputs:
            if _same_file(dest, i):
                raise IrtoolError(f"refusing to write '{dest}': it is the {what} '{i}' of this "
                                  "command (writing it would destroy what is being read); "
                                  "choose another output path")

    # -- files ----------------------------------------------------------------------------------

    def file(self, dest: str | os.PathLike[str], what: str = "output", *,
             kind: Kind | None = None, own: bool = False) -> Path:
        """A temporary path to write `dest` to; it replaces `dest` on commit (`kind`: see
        `check_destination`, `own`: see `_PendingFile`)."""
        d = check_destination(dest, what, kind)
        self._refuse_input(d, self.inputs)
        if d.is_dir():
            raise IrtoolError(f"cannot write {what} '{d}': it is a directory; give a file name")
        if any(_resolved(f.dest) == _resolved(d) for f in self.files):
            raise IrtoolError(f"cannot write {what} '{d}' twice in one command")
        special = _is_special(d)
        if not special:
            _make_parent(d, what)
        try:  # a special file's temporary goes to the temporary directory, not into /dev
            fd, temp = tempfile.mkstemp(dir=None if special else d.parent,
                                        prefix=f".{d.name}.", suffix=".irtool-tmp")
        except OSError as e:
            raise IrtoolError(f"cannot write {what} '{d}': {_reason(e)}") from None
        os.close(fd)
        os.chmod(temp, 0o666 & ~_umask())  # what open() would have made
        self.files.append(_PendingFile(d, Path(temp), own, special))
        return Path(temp)

    def side_file(self, name: str, what: str = "side file",
                  kind: Kind | None = WEIGHT_STORE) -> tuple[Path, Path]:
        """(temporary path, final path) of a file named `name` beside the primary output (a
        weight store unless `kind` says otherwise); the command may read it back (`own`) once
        it is written."""
        base = self.primary.parent if self.primary is not None else Path(".")
        dest = base / name
        return self.file(dest, what, kind=kind, own=True), dest

    def pending(self, path: str | os.PathLike[str]) -> Path | None:
        """The temporary file of the uncommitted output `path`, or None."""
        for f in reversed(self.files):
            if _resolved(f.dest) == _resolved(path):
                return f.temp
        return None

    def rename(self, path: str | os.PathLike[str], new: str | os.PathLike[str],
               kind: Kind | None = None) -> None:
        """The uncommitted output `path` goes to `new` instead (in the same directory)."""
        (f,) = [f for f in self.files if _resolved(f.dest) == _resolved(path)]
        d = check_destination(new, "output", kind)
        assert _resolved(d.parent) == _resolved(f.dest.parent), (d, f.dest)
        self._refuse_input(d, self.inputs)
        if any(_resolved(g.dest) == _resolved(d) for g in self.files):
            raise IrtoolError(f"cannot write '{d}' twice in one command")
        f.dest = d

    def discard(self, path: str | os.PathLike[str]) -> None:
        """Forget the uncommitted output `path` (its temporary file is deleted)."""
        for f in [f for f in self.files if _resolved(f.dest) == _resolved(path)]:
            with contextlib.suppress(OSError):
                f.temp.unlink()
            self.files.remove(f)

    def readable(self, path: str | os.PathLike[str]) -> Path:
        """Where to read `path` now: its temporary file while it is an uncommitted output (a
        store written by one pass and read by the next), else `path` itself."""
        temp = self.pending(path)
        return Path(path) if temp is None else temp

    # -- project directories --------------------------------------------------------------------

    def directory(self, dest: str | os.PathLike[str], force: bool | None = None) -> Path:
        """A temporary directory to build the project `dest` in; merged into `dest` on commit."""
        d = Path(dest)
        force = self.force if force is None else force
        refuse_inputs_inside(d, self.inputs)
        check_project_dir(d, force)
        _make_parent(d, "project directory")
        try:
            temp = Path(tempfile.mkdtemp(dir=d.parent, prefix=f".{d.name}.",
                                         suffix=".irtool-tmp"))
        except OSError as e:
            raise IrtoolError(f"cannot write the project directory '{d}': {_reason(e)}") from None
        os.chmod(temp, 0o777 & ~_umask())
        self.dirs.append(_PendingDir(d, temp, force))
        return temp

    # -- commit / abort -------------------------------------------------------------------------

    def commit(self) -> None:
        for f in self.files:
            try:
                if f.special:
                    _copy_into(f.temp, f.dest)
                else:
                    os.replace(f.temp, f.dest)
            except OSError as e:
                raise IrtoolError(f"cannot write '{f.dest}': {_reason(e)}") from None
        for d in self.dirs:
            _merge_project(d)
        self.files.clear()
        self.dirs.clear()

    def abort(self) -> None:
        for f in self.files:
            with contextlib.suppress(OSError):
                f.temp.unlink()
        for d in self.dirs:
            shutil.rmtree(d.temp, ignore_errors=True)
        self.files.clear()
        self.dirs.clear()


def _is_special(path: Path) -> bool:
    """An existing destination that is neither a regular file nor a directory."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _copy_into(temp: Path, dest: Path) -> None:
    """Write `temp`'s bytes into the special file `dest`, then delete `temp`."""
    with open(temp, "rb") as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    temp.unlink()


def read_manifest(d: Path) -> list[str] | None:
    """The files irtool wrote in `d` (relative paths), or None without a manifest."""
    m = d / MANIFEST
    if not m.is_file():
        return None
    try:
        lines = m.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise IrtoolError(f"cannot read the irtool manifest '{m}': {e}") from None
    return [ln for ln in lines if ln and not ln.startswith("#")]


def refuse_inputs_inside(d: Path, inputs: Iterable[str | os.PathLike[str]]) -> None:
    """A project directory never holds one of the command's inputs (the model, calibration
    data, a tokenizer, a LoRA file): a project file of the same name would replace it, even
    with --force. Drivers call it before the work too, with the inputs they were given."""
    for i in inputs:
        if d.exists() and _resolved(i).is_relative_to(_resolved(d)):
            raise IrtoolError(f"refusing to write the project directory '{d}': it holds "
                              f"the input '{i}'; choose another directory")


def check_project_dir(d: Path, force: bool) -> None:
    """A project goes only where irtool cannot destroy a user's work."""
    if d.exists() and not d.is_dir():
        raise IrtoolError(f"cannot write the project directory '{d}': it exists and is not a "
                          "directory")
    if not d.exists() or force:
        return
    try:
        empty = not any(d.iterdir())
    except OSError as e:
        raise IrtoolError(f"cannot read the project directory '{d}': {_reason(e)}") from None
    if empty or read_manifest(d) is not None:
        return
    raise IrtoolError(f"refusing to write into '{d}': it is not empty and was not written by "
                      f"irtool (no {MANIFEST}); choose a new or empty directory, or pass "
                      "--force to write the project's files into it (other files are kept)")


def _inside(root: Path, rel: str) -> Path | None:
    """`root/rel` if it stays inside `root` (a manifest line is never trusted blindly)."""
    p = Path(os.path.normpath(root / rel))
    return p if p.is_relative_to(root) and p != root else None


def _remove_emptied(root: Path, removed: Iterable[Path]) -> None:
    """The folders inside `root` that held only files irtool removed (a previous project's
    runtime/) go with them; a folder with anything else left in it (a user's file) stays, and
    so does every folder irtool removed nothing from."""
    for d in sorted({p.parent for p in removed}, key=lambda p: len(p.parts), reverse=True):
        while d != root and d.is_relative_to(root) and d.resolve() == d:  # no link followed
            try:
                if any(d.iterdir()):
                    break
                d.rmdir()
            except OSError:
                break
            d = d.parent


def _merge_project(pending: _PendingDir) -> None:
    dest, temp = pending.dest, pending.temp
    new_files = sorted(str(p.relative_to(temp)) for p in temp.rglob("*") if not p.is_dir())
    try:
        if not dest.exists():
            (temp / MANIFEST).write_text(_MANIFEST_HEADER + "\n".join(new_files) + "\n")
            os.replace(temp, dest)
            return
        root = dest.resolve()
        removed = []
        for rel in read_manifest(dest) or []:  # what irtool wrote last time and no longer does
            old = _inside(root, rel)
            if rel not in new_files and old is not None and old.is_file() and not old.is_symlink():
                old.unlink()
                removed.append(old)
        _remove_emptied(root, removed)  # before: a new file may take an emptied folder's name
        for rel in new_files:
            target = root / rel
            if target.is_dir() and not target.is_symlink():
                raise IrtoolError(f"cannot write '{target}': a directory of that name exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()  # replace the link itself, never the file it points to
            os.replace(temp / rel, target)
        (root / MANIFEST).write_text(_MANIFEST_HEADER + "\n".join(new_files) + "\n")
    except OSError as e:
        raise IrtoolError(f"cannot write the project directory '{dest}': {_reason(e)}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


_CURRENT: ContextVar[Outputs | None] = ContextVar("irtool_outputs", default=None)


def current() -> Outputs | None:
    """The transaction of the running command, if any."""
    return _CURRENT.get()


def note_input(path: str | os.PathLike[str], what: str = "input") -> None:
    """Declare a file the running command reads (no-op outside a command)."""
    outputs = current()
    if outputs is not None:
        outputs.add_input(path, what)


def readable(path: str | os.PathLike[str]) -> Path:
    """`path`, or its pending temporary file (see `Outputs.readable`)."""
    outputs = current()
    return Path(path) if outputs is None else outputs.readable(path)


@contextlib.contextmanager
def writing(inputs: Iterable[str | os.PathLike[str]] = (), *, force: bool = False,
            primary: str | os.PathLike[str] | None = None) -> Iterator[Outputs]:
    """Run a command's body; commit its outputs if it succeeds, discard them if not."""
    outputs = Outputs([Path(i) for i in inputs], force,
                      Path(primary) if primary is not None else None)
    token = _CURRENT.set(outputs)
    try:
        yield outputs
        outputs.commit()
    except BaseException:
        outputs.abort()
        raise
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def transaction() -> Iterator[Outputs]:
    """The running command's transaction, or a new one committed when the block ends."""
    outer = current()
    if outer is not None:
        yield outer
        return
    with writing() as outputs:
        yield outputs


@contextlib.contextmanager
def output_file(dest: str | os.PathLike[str], what: str = "output",
                kind: Kind | None = None) -> Iterator[Path]:
    """`with output_file(p) as tmp:` write `tmp`; it becomes `p` when the command succeeds."""
    with transaction() as outputs:
        yield outputs.file(dest, what, kind=kind)


@contextlib.contextmanager
def project_directory(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """`with project_directory(d) as tmp:` write the project into `tmp`; it is merged into `d`
    when the command succeeds (see `check_project_dir` for when `d` may be written)."""
    with transaction() as outputs:
        yield outputs.directory(dest)


def write_text(dest: str | os.PathLike[str], text: str, what: str = "output",
               kind: Kind | None = None) -> None:
    with output_file(dest, what, kind) as tmp:
        tmp.write_text(text)
