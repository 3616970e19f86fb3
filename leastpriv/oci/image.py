"""Container images as untrusted input: read an OCI image layout or a ``docker save``
archive and unpack its layers into a rootfs without ever writing outside it.

leastpriv runs as root, so every layer member is treated as hostile:

* member names that are absolute or climb with ``..`` are refused (no image
  builder produces them);
* every path is resolved *inside* the rootfs by this module, component by
  component, following symlinks the way the container will see them (an
  absolute link target restarts at the rootfs, ``..`` stops at the rootfs).
  A symlink an earlier layer planted (``etc -> /``, ``x -> ../../..``) is
  therefore never followed out of the rootfs; Python's ``data`` extraction
  filter would instead refuse legitimate layered images (``var/run -> /run``
  then ``var/run/foo``), because it resolves links against the host;
* files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` after removing what was
  there, so no link is ever written through;
* hardlinks must name a regular file already inside the rootfs;
* device nodes are not created (runc provides /dev); setuid/setgid bits are
  stripped (and listed in the report, for review);
* a member whose data is shorter than its header claims, a blob whose digest or
  size does not match its descriptor, and unpacked totals above a limit are
  refused;
* whiteouts: ``.wh.NAME`` deletes NAME from lower layers, ``.wh..wh..opq``
  empties its directory of lower layers' entries.

The result is an :class:`UnpackReport` listing every neutralized member.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from .. import schema
from ..errors import UserError
from ..kernel import syscalls

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
DEFAULT_MAX_BYTES = 8 << 30          # unpacked file data, further bounded by the free space where it goes
DISK_RESERVE = 256 << 20             # left free on the rootfs' file system
MAX_HEADER_BYTES = 1 << 20           # one pax / GNU long-name header (names, xattrs); real ones are < 64 KiB
MAX_CONFIG_BYTES = 4 << 20           # the image config, a manifest, an index
MAX_CONFIG_ITEMS = 4096              # Env / Entrypoint / Cmd entries (runc's create times out on 300k)
MAX_SYMLINK_HOPS = 40
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


_STR = {"type": "string", "maxLength": 4096}
_DIGEST = {"type": "string", "maxLength": 200}
_SIZE = {"type": "integer", "minimum": 0}
_STRS = {"type": ["array", "null"], "items": {"type": "string", "maxLength": 1 << 16}, "maxItems": MAX_CONFIG_ITEMS}
_ANNOTATIONS = {"type": ["object", "null"], "additionalProperties": _STR}
# What leastpriv reads of the image metadata (OCI image-spec, docker save); other keys are left alone.
INDEX_SCHEMA = {"type": "object", "required": ["manifests"], "properties": {
    "manifests": {"type": "array", "minItems": 1, "maxItems": 1024, "items": {
        "type": "object", "required": ["digest"], "properties": {
            "digest": _DIGEST, "mediaType": _STR, "size": _SIZE, "annotations": _ANNOTATIONS,
            "platform": {"type": "object", "properties": {"os": _STR, "architecture": _STR}}}}}}}
MANIFEST_SCHEMA = {"type": "object", "required": ["config", "layers"], "properties": {
    "mediaType": _STR,
    "config": {"type": "object", "required": ["digest"], "properties": {"digest": _DIGEST, "size": _SIZE}},
    "layers": {"type": "array", "maxItems": 1024, "items": {
        "type": "object", "required": ["digest"], "properties": {"digest": _DIGEST, "mediaType": _STR,
                                                                 "size": _SIZE}}}}}
DOCKER_MANIFEST_SCHEMA = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["Config", "Layers"], "properties": {
        "Config": _STR, "RepoTags": {"type": ["array", "null"], "items": _STR, "maxItems": 1024},
        "Layers": {"type": "array", "items": _STR, "maxItems": 1024}}}}
_ARGV = {"type": ["array", "string", "null"], "items": {"type": "string", "maxLength": 1 << 16},
         "maxItems": MAX_CONFIG_ITEMS, "maxLength": 1 << 16}
CONFIG_SCHEMA = {"type": "object", "properties": {
    "architecture": _STR, "os": _STR,
    "config": {"type": ["object", "null"], "properties": {
        "Entrypoint": _ARGV, "Cmd": _ARGV, "Env": _STRS, "User": {"type": ["string", "null"], "maxLength": 4096},
        "WorkingDir": {"type": ["string", "null"], "maxLength": 4096},
        "ExposedPorts": {"type": ["object", "null"], "maxProperties": MAX_CONFIG_ITEMS}}},
    "rootfs": {"type": ["object", "null"], "properties": {
        "diff_ids": {"type": ["array", "null"], "items": _DIGEST, "maxItems": 1024}}}}}


class UnsafeImage(UserError):
    """The image tries something unpacking refuses (path traversal, bad sizes, ...)."""


class _CappedTarInfo(tarfile.TarInfo):
    """tarfile reads a pax or GNU long-name header whole into memory: refuse a huge one before it does."""

    def _check_header_size(self) -> None:
        if self.size > MAX_HEADER_BYTES:
            raise UnsafeImage(f"a tar header of {self.size} bytes (pax or long name; limit {MAX_HEADER_BYTES}) "
                              "(refused)")

    def _proc_pax(self, tarfile):
        self._check_header_size()
        return super()._proc_pax(tarfile)

    def _proc_gnulong(self, tarfile):
        self._check_header_size()
        return super()._proc_gnulong(tarfile)


@dataclass(frozen=True)
class ImageConfig:
    """What the image config says about how to run it (OCI image-spec ``config``)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()
    architecture: str = ""
    os: str = ""
    name: str = ""          # a repo tag or the manifest digest

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(self.entrypoint) + tuple(self.cmd)

    def to_json(self) -> dict:
        return {"entrypoint": list(self.entrypoint), "cmd": list(self.cmd), "env": list(self.env), "user": self.user,
                "working_dir": self.working_dir, "exposed_ports": list(self.exposed_ports),
                "architecture": self.architecture, "os": self.os, "name": self.name}


@dataclass(frozen=True)
class Layer:
    name: str                 # where it came from (blob path)
    media_type: str
    digest: str = ""          # expected sha256 of the blob ("" when unknown)
    size: int = -1            # expected size of the blob (-1 when unknown)


@dataclass
class UnpackReport:
    """What unpacking did besides writing files: every member it neutralized or skipped."""

    layers: int = 0
    files: int = 0
    bytes: int = 0
    neutralized: list[str] = field(default_factory=list)    # one line each: "layer 2: usr/bin/su: setuid bit stripped"
    setuid_files: list[str] = field(default_factory=list)   # /path (mode) as the image had them
    devices_skipped: list[str] = field(default_factory=list)
    whiteouts: int = 0

    def to_json(self) -> dict:
        return {"layers": self.layers, "files": self.files, "bytes": self.bytes, "neutralized": list(self.neutralized),
                "setuid_files": list(self.setuid_files), "devices_skipped": list(self.devices_skipped),
                "whiteouts": self.whiteouts}


# ------------------------------------------------------------------- the image archive


class ImageSource:
    """An OCI image layout (directory or tar) or a ``docker save`` tar, opened read-only."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        if self.path.is_dir():
            self._names = None
        elif self.path.is_file():
            try:
                self._tar = tarfile.open(self.path, "r:*", tarinfo=_CappedTarInfo)
                self._members = {}
                for m in self._tar.getmembers():
                    self._members.setdefault(_clean_archive_name(m.name), m)
            except (tarfile.TarError, OSError, EOFError) as exc:
                why = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
                raise UserError(f"{self.path}: not an image archive (an OCI layout or docker save tar): {why}") \
                    from None
        else:
            raise UserError(f"{self.path}: no such image (expected an OCI layout or a docker save archive)")

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- raw access to the archive's own files (names validated, never outside it)
    def exists(self, name: str) -> bool:
        name = _safe_archive_name(self.path, name)
        if self._tar is None:
            p = self.path / name
            return p.is_file() and not _has_symlink_below(self.path, name)
        return name in self._members

    def open(self, name: str) -> IO[bytes]:
        name = _safe_archive_name(self.path, name)
        if self._tar is None:
            if _has_symlink_below(self.path, name):
                raise UnsafeImage(f"{self.path}: {name}: is or passes through a symlink (refused)")
            try:   # non-blocking and checked on the fd: a fifo or a device in the layout is refused, not read
                fd = os.open(self.path / name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise UserError(f"{self.path}: {name}: {exc.strerror}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise UnsafeImage(f"{self.path}: {name}: not a regular file (refused)")
            return os.fdopen(fd, "rb")
        m = self._members.get(name)
        if m is None:
            raise UserError(f"{self.path}: {name}: missing from the archive")
        try:
            f = self._tar.extractfile(m)
        except (tarfile.TarError, KeyError) as exc:
            raise UnsafeImage(f"{self.path}: {name}: cannot be read ({exc})") from None
        if f is None:
            raise UserError(f"{self.path}: {name}: not a regular file in the archive")
        return f

    def read_json(self, name: str, limit: int = MAX_CONFIG_BYTES) -> dict | list:
        with self.open(name) as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            raise UnsafeImage(f"{self.path}: {name}: larger than {limit} bytes (refused)")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
            raise UserError(f"{self.path}: {name}: malformed JSON ({exc})") from None

    # -- the image
    def kind(self) -> str:
        if self.exists("index.json") and self.exists("oci-layout"):
            return "oci"
        if self.exists("manifest.json"):
            return "docker"
        raise UserError(f"{self.path}: neither an OCI image layout (oci-layout + index.json) nor a docker save "
                        "archive (manifest.json)")

    def load(self) -> tuple[ImageConfig, list[Layer]]:
        return self._load_oci() if self.kind() == "oci" else self._load_docker()

    def _blob_name(self, digest: str) -> str:
        m = DIGEST_RE.match(str(digest))
        if not m:
            raise UnsafeImage(f"{self.path}: digest {digest!r} is not sha256:<64 hex> (refused)")
        return f"blobs/sha256/{m.group(1)}"

    def _load_oci(self) -> tuple[ImageConfig, list[Layer]]:
        desc = {"mediaType": INDEX_TYPES[0], "digest": None}
        doc = self.read_json("index.json")
        name = ""
        where = f"{self.path}: index.json"
        for _ in range(8):   # nested indexes
            schema.check(doc, INDEX_SCHEMA, where, "image index")
            manifests = doc["manifests"]
            chosen = _pick_manifest(manifests, str(self.path))
            name = name or (chosen.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
            desc = chosen
            where = f"{self.path}: {self._blob_name(chosen.get('digest'))}"
            doc = self.read_json(self._blob_name(chosen.get("digest")))
            if chosen.get("mediaType") not in INDEX_TYPES and \
                    (not isinstance(doc, dict) or doc.get("mediaType") not in INDEX_TYPES):
                break
        else:
            raise UnsafeImage(f"{self.path}: image indexes nested more than 8 deep (refused)")
        manifest = doc
        schema.check(manifest, MANIFEST_SCHEMA, where, "image manifest")
        try:
            cfg_desc = manifest["config"]
            layers = [Layer(self._blob_name(d["digest"]), d.get("mediaType", ""), d["digest"], int(d.get("size", -1)))
                      for d in manifest["layers"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{self.path}: malformed image manifest ({exc})") from None
        cfg = self.read_json(self._blob_name(cfg_desc["digest"]))
        schema.check(cfg, CONFIG_SCHEMA, f"{self.path}: {self._blob_name(cfg_desc['digest'])}", "image config")
        return _config_of(cfg, name or str(desc.get("digest", ""))), layers

    def _load_docker(self) -> tuple[ImageConfig, list[Layer]]:
        doc = self.read_json("manifest.json")
        schema.check(doc, DOCKER_MANIFEST_SCHEMA, f"{self.path}: manifest.json", "docker save manifest")
        if len(doc) > 1:
            raise UserError(f"{self.path}: holds {len(doc)} images; save one image per archive")
        entry = doc[0]
        try:
            cfg = self.read_json(entry["Config"])
            schema.check(cfg, CONFIG_SCHEMA, f"{self.path}: {entry['Config']}", "image config")
            # docker save stores layers uncompressed: each must hash to its diff_id in the config
            diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or [] if isinstance(cfg, dict) else []
            if len(diff_ids) != len(entry["Layers"]):
                diff_ids = [""] * len(entry["Layers"])
            layers = [Layer(str(n), "application/vnd.docker.image.rootfs.diff.tar",
                            d if DIGEST_RE.match(str(d)) else "") for n, d in zip(entry["Layers"], diff_ids)]
        except (KeyError, TypeError) as exc:
            raise UserError(f"{self.path}: malformed manifest.json ({exc})") from None
        tags = entry.get("RepoTags") or []
        return _config_of(cfg, tags[0] if tags else str(entry["Config"])), layers

    def layer_stream(self, layer: Layer) -> IO[bytes]:
        """The layer's blob; digest and size are checked while reading (see :meth:`verify_layer`)."""
        raw = self.open(layer.name)
        return _Checked(raw, layer, str(self.path))

    def verify_layer(self, layer: Layer) -> None:
        """Hash the blob before anything of it is unpacked: a blob longer than its descriptor stops at the
        first byte too many, a wrong digest stops before a single file is written (a gzip bomb with a
        wrong digest is never decompressed)."""
        with self.layer_stream(layer) as stream:
            stream.drain()


class _Checked(io.RawIOBase):
    """Reads a blob, hashing it; at EOF the digest and size must match the descriptor."""

    def __init__(self, raw: IO[bytes], layer: Layer, where: str):
        self.raw, self.layer, self.where = raw, layer, where
        self.h = hashlib.sha256()
        self.n = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(len(b))
        if not data:
            self._finish()
            return 0
        self.h.update(data)
        self.n += len(data)
        if self.layer.size >= 0 and self.n > self.layer.size:
            raise UnsafeImage(f"{self.where}: {self.layer.name}: longer than the {self.layer.size} bytes its "
                              "descriptor claims (refused)")
        b[:len(data)] = data
        return len(data)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.layer.size >= 0 and self.n != self.layer.size:
            raise UnsafeImage(f"{self.where}: {self.layer.name}: has {self.n} bytes, its descriptor claims "
                              f"{self.layer.size} (refused)")
        if self.layer.digest and f"sha256:{self.h.hexdigest()}" != self.layer.digest:
            raise UnsafeImage(f"{self.where}: {self.layer.name}: sha256 does not match its descriptor (refused)")

    def drain(self) -> None:
        while self.read(1 << 20):
            pass
        self._finish()

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


def _pick_manifest(manifests: list, where: str) -> dict:
    if len(manifests) == 1:
        return manifests[0]
    goarch = {"x86_64": "amd64", "aarch64": "arm64"}.get(syscalls.host_arch(), syscalls.host_arch())
    for m in manifests:
        p = m.get("platform") or {}
        if p.get("os", "linux") == "linux" and p.get("architecture") == goarch:
            return m
    raise UserError(f"{where}: the index has {len(manifests)} manifests and none for linux/{goarch}")


def _config_of(cfg: dict, name: str) -> ImageConfig:
    if not isinstance(cfg, dict):
        raise UserError("image config: expected a JSON object")
    c = cfg.get("config") or {}

    def strs(v) -> tuple[str, ...]:
        if v is None:
            return ()
        if isinstance(v, str):
            return ("/bin/sh", "-c", v)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise UserError(f"image config: expected a list of strings, got {v!r}")
        return tuple(v)

    return ImageConfig(entrypoint=strs(c.get("Entrypoint")), cmd=strs(c.get("Cmd")), env=strs(c.get("Env")),
                       user=str(c.get("User") or ""), working_dir=str(c.get("WorkingDir") or ""),
                       exposed_ports=tuple(sorted((c.get("ExposedPorts") or {}).keys())),
                       architecture=str(cfg.get("architecture", "")), os=str(cfg.get("os", "")), name=name)


def _clean_archive_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _safe_archive_name(where: Path, name: str) -> str:
    if not isinstance(name, str) or not name:
        raise UnsafeImage(f"{where}: empty or non-string file name in the image metadata (refused)")
    name = _clean_archive_name(name)
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\0" in name:
        raise UnsafeImage(f"{where}: {name!r}: names a file outside the image archive (refused)")
    return name


def _has_symlink_below(root: Path, name: str) -> bool:
    p = root
    for part in name.split("/"):
        p = p / part
        if p.is_symlink():
            return True
    return False


# ------------------------------------------------------------------- unpacking


def _member_parts(name: str, layer_no: int) -> list[str]:
    """The member's path components, or UnsafeImage for absolute or climbing names."""
    if "\0" in name:
        raise UnsafeImage(f"layer {layer_no}: member {name!r}: NUL in name (refused)")
    clean = name
    while clean.startswith("./"):
        clean = clean[2:]
    if clean.startswith("/"):
        raise UnsafeImage(f"layer {layer_no}: member {name!r}: absolute path (refused: it would name a host path)")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeImage(f"layer {layer_no}: member {name!r}: '..' in path (refused: it climbs out of the rootfs)")
    return parts


def resolve_in_root(root: str, parts: list[str], follow_last: bool) -> str:
    """The host path of ``parts`` inside ``root``, following symlinks as the container would.

    Absolute link targets restart at ``root``; ``..`` never goes above it. The
    result is always ``root`` or below it (it is built only from plain names).
    """
    todo = list(parts)
    stack: list[str] = []
    hops = 0
    while todo:
        p = todo.pop(0)
        if p in ("", "."):
            continue
        if p == "..":
            if stack:
                stack.pop()
            continue
        cand = os.path.join(root, *stack, p)
        if (todo or follow_last) and os.path.islink(cand):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UnsafeImage(f"{'/'.join(parts)}: too many levels of symbolic links (refused)")
            target = os.readlink(cand)
            if target.startswith("/"):
                stack = []
            todo = target.split("/") + todo
            continue
        stack.append(p)
    return os.path.join(root, *stack)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _mkdirs(root: str, parts: list[str]) -> str:
    """Make the directory ``parts`` (resolved inside root); returns its host path."""
    cur: list[str] = []
    path = root
    for p in parts:
        path = resolve_in_root(root, cur + [p], follow_last=True)
        q = root
        for c in _rel_parts(root, path):   # plain names only: every link on the way was resolved
            q = os.path.join(q, c)
            try:
                st = os.lstat(q)
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafeImage(f"{'/'.join(parts)}: a symlink appeared while unpacking (refused)")
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(q)
                    os.mkdir(q, 0o755)
            except FileNotFoundError:
                os.mkdir(q, 0o755)
        cur = _rel_parts(root, path)
    return path


def _rel_parts(root: str, path: str) -> list[str]:
    rel = os.path.relpath(path, root)
    return [] if rel == "." else rel.split("/")


def unpack(source: ImageSource, layers: list[Layer], rootfs: str | os.PathLike,
           max_bytes: int = DEFAULT_MAX_BYTES) -> UnpackReport:
    """Unpack ``layers`` in order into ``rootfs`` (created, must be empty or absent)."""
    root = os.path.realpath(rootfs)
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        raise UserError(f"{rootfs}: not empty; unpack into a fresh directory")
    os.chmod(root, 0o755)
    max_bytes = min(max_bytes, free_bytes(root))
    report = UnpackReport()
    for i, layer in enumerate(layers, 1):
        mt = layer.media_type
        if "zstd" in mt:
            raise UserError(f"{source.path}: layer {i}: zstd-compressed layers are not supported; "
                            "re-save the image with gzip or uncompressed layers")
        source.verify_layer(layer)     # digest and size first: nothing of a lying blob is unpacked
        stream = source.layer_stream(layer)
        try:
            with tarfile.open(fileobj=io.BufferedReader(stream, 1 << 20), mode="r|*", tarinfo=_CappedTarInfo) as tf:
                _unpack_layer(tf, root, i, report, max_bytes)
            stream.drain()
        except tarfile.TarError as exc:
            raise UnsafeImage(f"{source.path}: layer {i}: broken or truncated tar ({exc}) (refused)") from None
        except EOFError as exc:
            raise UnsafeImage(f"{source.path}: layer {i}: truncated ({exc}) (refused)") from None
        finally:
            stream.close()
        report.layers += 1
    return report


def free_bytes(path: str) -> int:
    """What unpacking may write under ``path``: its file system's free space less a reserve."""
    st = os.statvfs(path)
    return max(0, st.f_bavail * st.f_frsize - DISK_RESERVE)


def _unpack_layer(tf: tarfile.TarFile, root: str, n: int, report: UnpackReport, max_bytes: int) -> None:
    created: set[str] = set()    # host paths this layer created (opaque whiteouts keep them)
    deferred_dirs: list[tuple[str, int]] = []
    for m in tf:
        parts = _member_parts(m.name, n)
        if not parts:
            continue   # the root itself
        base = parts[-1]
        parent = _mkdirs(root, parts[:-1]) if len(parts) > 1 else root
        label = "/".join(parts)
        if base == OPAQUE:
            for child in os.listdir(parent):
                p = os.path.join(parent, child)
                if p not in created:
                    _remove(p)
            report.whiteouts += 1
            continue
        if base.startswith(WHITEOUT_PREFIX):
            victim = base[len(WHITEOUT_PREFIX):]
            if victim in ("", ".", ".."):
                raise UnsafeImage(f"layer {n}: whiteout {m.name!r} names no file (refused)")
            _remove(os.path.join(parent, victim))
            report.whiteouts += 1
            continue
        dest = os.path.join(parent, base)
        mode = m.mode & 0o7777
        if mode & (stat.S_ISUID | stat.S_ISGID) and not m.isdir():
            report.setuid_files.append(f"/{label} ({oct(mode)})")
            report.neutralized.append(f"layer {n}: {label}: {'setuid' if mode & stat.S_ISUID else 'setgid'} bit "
                                      "stripped on the host")
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        if m.isdir():
            try:
                st = os.lstat(dest)
                if not stat.S_ISDIR(st.st_mode):
                    _remove(dest)
                    os.mkdir(dest, 0o700)
            except FileNotFoundError:
                os.mkdir(dest, 0o700)
            created.add(dest)
            deferred_dirs.append((dest, mode & ~stat.S_ISUID))
            _chown(dest, m)
            continue
        if m.ischr() or m.isblk():
            report.devices_skipped.append(f"/{label}")
            report.neutralized.append(f"layer {n}: {label}: device node not created (the runtime provides /dev)")
            continue
        _remove(dest)
        created.add(dest)
        if m.isreg():
            report.bytes += m.size
            if report.bytes > max_bytes:
                raise UnsafeImage(f"layer {n}: {label}: the image unpacks to more than {max_bytes} bytes (refused; "
                                  "the limit is 8 GiB or the free space of the working directory less 256 MiB)")
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                src = tf.extractfile(m)
                left = m.size
                while left > 0:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        raise UnsafeImage(f"layer {n}: {label}: header claims {m.size} bytes, the archive has "
                                          f"{m.size - left} (refused)")
                    os.write(fd, chunk)
                    left -= len(chunk)
                _fchown(fd, m)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            report.files += 1
        elif m.issym():
            os.symlink(m.linkname, dest)
            _chown(dest, m)
            if m.linkname.startswith("/") or _climbs(parts[:-1], m.linkname):
                where = "an absolute path" if m.linkname.startswith("/") else "above the image root"
                report.neutralized.append(f"layer {n}: {label} -> {m.linkname}: symlink to {where}: kept as a link "
                                          "(the container resolves it inside its root), never followed on the host")
        elif m.islnk():
            tparts = _member_parts(m.linkname, n)
            target = resolve_in_root(root, tparts, follow_last=False)
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                raise UnsafeImage(f"layer {n}: hardlink {label} -> {m.linkname}: target is not in the rootfs "
                                  "(refused)") from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeImage(f"layer {n}: hardlink {label} -> {m.linkname}: target is a directory (refused)")
            if os.path.realpath(os.path.dirname(target)) != os.path.dirname(target) or \
                    not target.startswith(root + "/"):
                raise UnsafeImage(f"layer {n}: hardlink {label} -> {m.linkname}: target leaves the rootfs (refused)")
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                raise UnsafeImage(f"layer {n}: hardlink {label} -> {m.linkname}: target is setuid/setgid (refused)")
            os.link(target, dest, follow_symlinks=False)
            report.files += 1
        elif m.isfifo():
            os.mkfifo(dest, mode & 0o777)
            _chown(dest, m)
        else:
            report.neutralized.append(f"layer {n}: {label}: unsupported member type {m.type!r} skipped")
    # Directory modes wait for the end of the layer (a 0555 directory must still receive its files). By
    # then a later member may have replaced a directory on the way by a symlink (a/, a/sub 0777, then
    # a -> /host/dir): the path is walked again from the rootfs, one component at a time, fd-relative
    # with O_NOFOLLOW, and the mode is set on the directory that was opened, never through a link.
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for d, mode in reversed(deferred_dirs):
            fd = open_beneath(root_fd, _rel_parts(root, d))
            if fd is None:
                report.neutralized.append(f"layer {n}: /{os.path.relpath(d, root)}: replaced by a symlink or a "
                                          "file later in the layer: its directory mode was not applied")
                continue
            try:
                os.fchmod(fd, mode & 0o3777 & ~stat.S_ISUID)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def open_beneath(dir_fd: int, parts: list[str]) -> int | None:
    """An O_RDONLY fd of the directory ``parts`` below ``dir_fd``, or None when a component is a symlink,
    not a directory, or gone. Like openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), one openat per name."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.dup(dir_fd)
    try:
        for p in parts:
            if p in ("", ".", "..") or "/" in p:
                return None
            nfd = os.open(p, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError:       # ELOOP (a symlink), ENOTDIR, ENOENT
        os.close(fd)
        return None
    return fd


def _climbs(parent_parts: list[str], target: str) -> bool:
    depth = len(parent_parts)
    for p in target.split("/"):
        if p == "..":
            depth -= 1
            if depth < 0:
                return True
        elif p not in ("", "."):
            depth += 1
    return False


def _chown(path: str, m: tarfile.TarInfo) -> None:
    if os.geteuid() == 0:
        try:
            os.lchown(path, m.uid, m.gid)
        except OSError:
            pass


def _fchown(fd: int, m: tarfile.TarInfo) -> None:
    if os.geteuid() == 0:
        try:
            os.fchown(fd, m.uid, m.gid)
        except OSError:
            pass


def load_and_unpack(image: str | os.PathLike, rootfs: str | os.PathLike) -> tuple[ImageConfig, UnpackReport]:
    """Open ``image``, unpack it into ``rootfs``; the image config and what unpacking neutralized."""
    with ImageSource(image) as src:
        cfg, layers = src.load()
        if cfg.os and cfg.os != "linux":
            raise UserError(f"{image}: image is for {cfg.os}, not linux")
        report = unpack(src, layers, rootfs)
    return cfg, report


def iter_rootfs(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path inside the image, lstat) for every entry, never following a link."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            try:
                yield "/" + os.path.relpath(p, root), os.lstat(p)
            except FileNotFoundError:
                continue


def scan_rootfs(root: str, limit: int = 200) -> dict:
    """World-writable paths of an unpacked rootfs (sticky directories apart), before anything runs in it."""
    world_writable, sticky_dirs = [], []
    for path, st in iter_rootfs(root):
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & stat.S_IWOTH:
            if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
                sticky_dirs.append(path)
            else:
                world_writable.append(path)
    return {"world_writable": sorted(world_writable)[:limit], "world_writable_sticky_dirs": sorted(sticky_dirs)[:limit]}
