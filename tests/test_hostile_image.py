"""Hostile container images: every attack is refused or neutralized, and nothing outside leastpriv's own
working directory is written, chmod-ed or chown-ed (a before/after snapshot of the test's directory says so).

The images are generated here, small and bounded (the largest unpacks to a few MiB).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from leastpriv.oci.image import load_and_unpack
from leastpriv.errors import UserError
from tests.conftest import need_root
from tests.test_container import _add, _sha, layer


def snapshot(top: Path, skip: Path | None = None) -> dict:
    """Every entry below ``top`` (not following links): mode, owner, size, mtime, link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames + ["."]:
            p = Path(dirpath, name)
            if skip is not None and p == skip:
                continue
            st = os.lstat(p)
            out[str(p)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                           os.readlink(p) if os.path.islink(p) else None)
    return out


def image(path: Path, layers: list[bytes], config: dict | None = None, *, gz: bool = False,
          digests: list[str] | None = None, raw_config: bytes | None = None, index_extra: dict | None = None,
          manifest_doc: dict | None = None) -> Path:
    """An OCI image layout archive; ``digests`` overrides the layer digests the manifest claims."""
    blobs = [gzip.compress(x, mtime=0) for x in layers] if gz else list(layers)
    cfg = raw_config if raw_config is not None else json.dumps(
        {"architecture": "amd64", "os": "linux", "config": config or {"Cmd": ["/bin/sh"]},
         "rootfs": {"type": "layers", "diff_ids": [_sha(x) for x in layers]}}).encode()
    mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    manifest = json.dumps(manifest_doc if manifest_doc is not None else {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": mt, "digest": (digests[i] if digests else _sha(b)), "size": len(b)}
                   for i, b in enumerate(blobs)]}).encode()
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _sha(manifest),
             "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "hostile:1"}}
    entry.update(index_extra or {})
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    with tarfile.open(path, "w") as tf:
        _add(tf, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(tf, "index.json", index)
        for blob in [cfg, manifest]:
            _add(tf, "blobs/sha256/" + _sha(blob)[7:], blob)
        for i, blob in enumerate(blobs):   # stored under the digest the manifest claims
            _add(tf, "blobs/sha256/" + (digests[i] if digests else _sha(blob))[7:], blob)
    return path


def unpack_attack(tmp_path: Path, layers, **kw):
    """Unpack into tmp_path/work/rootfs; the snapshot of tmp_path outside work/ must not change."""
    host = tmp_path / "host"
    (host / "sub").mkdir(parents=True, exist_ok=True)
    os.chmod(host / "sub", 0o700)
    (host / "sub" / "file").write_text("host data")
    os.chmod(host / "sub" / "file", 0o600)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    img = image(tmp_path / "img.tar", layers, **kw)
    before = snapshot(tmp_path, skip=work)
    try:
        return load_and_unpack(img, work / "rootfs")
    finally:
        after = snapshot(tmp_path, skip=work)
        assert before == after, f"outside the working directory changed: {set(before.items()) ^ set(after.items())}"


@pytest.mark.parametrize("mode", [0o777, 0o000, 0o4777])
def test_deferred_directory_mode_never_follows_a_later_symlink(tmp_path, mode):
    """The critical one: a/, a/sub (mode M), then a -> /host: the host's sub must keep its mode."""
    host = tmp_path / "host"
    lay = layer([("a", "dir"), ("a/sub", "dir", None, {"mode": mode}), ("a", "symlink", str(host))])
    _cfg, report = unpack_attack(tmp_path, [lay])
    assert (host / "sub").stat().st_mode & 0o7777 == 0o700
    assert any("its directory mode was not applied" in n for n in report.neutralized)
    # and a relative link that climbs: also kept inside
    lay = layer([("b", "dir"), ("b/sub", "dir", None, {"mode": mode}),
                 ("b", "symlink", "../" * 12 + str(host)[1:])])
    os.system(f"rm -rf {tmp_path}/work")
    unpack_attack(tmp_path, [lay])
    assert (host / "sub").stat().st_mode & 0o7777 == 0o700


def test_directory_modes_still_applied_inside(tmp_path):
    lay = layer([("d", "dir", None, {"mode": 0o555}), ("d/f", "file", b"x", {"mode": 0o644}),
                 ("t", "dir", None, {"mode": 0o1777})])
    unpack_attack(tmp_path, [lay])
    root = tmp_path / "work" / "rootfs"
    assert (root / "d").stat().st_mode & 0o7777 == 0o555 and (root / "d" / "f").read_bytes() == b"x"
    assert (root / "t").stat().st_mode & 0o7777 == 0o1777


def test_layer_digest_checked_before_anything_is_unpacked(tmp_path):
    """A gzip bomb (64 MiB of zeros in ~64 KiB) whose digest is wrong is never decompressed into files."""
    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w") as tf:
        ti = tarfile.TarInfo("zeros")
        ti.size = 64 << 20

        class Zeros(io.RawIOBase):
            left = 64 << 20

            def readinto(self, b):
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n
        tf.addfile(ti, Zeros())
    with pytest.raises(UserError) as exc:
        unpack_attack(tmp_path, [bomb.getvalue()], gz=True, digests=["sha256:" + "0" * 64])
    assert "sha256 does not match" in str(exc.value)
    assert os.listdir(tmp_path / "work" / "rootfs") == []


def test_huge_pax_header_refused_before_it_is_read(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("f")
        ti.pax_headers = {"comment": "x" * (2 << 20)}
        tf.addfile(ti, io.BytesIO(b""))
    with pytest.raises(UserError) as exc:
        unpack_attack(tmp_path, [buf.getvalue()])
    assert "tar header of" in str(exc.value) and "refused" in str(exc.value)


def test_unpacking_is_bounded_by_free_disk_space(tmp_path):
    need_root()
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(small)], check=True)
    try:
        # 300 MiB tmpfs, 256 MiB reserve: ~44 MiB may be written; the layer holds 64 MiB (gzip: ~64 KiB)
        lay = io.BytesIO()
        with tarfile.open(fileobj=lay, mode="w") as tf:
            for i in range(4):
                ti = tarfile.TarInfo(f"f{i}")
                ti.size = 16 << 20
                tf.addfile(ti, io.BytesIO(bytes(16 << 20)))
        img = image(tmp_path / "img.tar", [lay.getvalue()], gz=True)
        with pytest.raises(UserError) as exc:
            load_and_unpack(img, small / "rootfs")
        assert "free space" in str(exc.value)
        used = os.statvfs(small)
        assert (used.f_blocks - used.f_bfree) * used.f_frsize < 48 << 20
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


@pytest.mark.parametrize("attack,kw", [
    ("config is a list", {"raw_config": b"[1, 2]"}),
    ("Env of 300k entries", {"raw_config": json.dumps({"os": "linux", "config": {
        "Env": ["A=1"] * 300_000}}).encode()}),
    ("Cmd a number", {"config": {"Cmd": 5}}),
    ("annotations a list", {"index_extra": {"annotations": ["a"]}}),
    ("layers an object", {"manifest_doc": {"config": {"digest": "sha256:" + "0" * 64}, "layers": {"a": 1}}}),
    ("platform a string", {"index_extra": {"platform": "linux"}}),
    ("deep nesting", {"raw_config": b"[" * 100_000 + b"]" * 100_000}),
])
def test_image_metadata_with_wrong_types_refused_in_one_line(tmp_path, attack, kw):
    with pytest.raises(UserError) as exc:
        unpack_attack(tmp_path, [layer([("f", "file", b"x")])], **kw)
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg
    assert str(tmp_path / "img.tar") in msg


def test_docker_repotags_wrong_type_refused(tmp_path):
    lay = layer([("f", "file", b"x")])
    cfg = json.dumps({"os": "linux", "config": {}, "rootfs": {"diff_ids": [_sha(lay)]}}).encode()
    with tarfile.open(tmp_path / "d.tar", "w") as tf:
        _add(tf, "manifest.json", json.dumps([{"Config": "c.json", "RepoTags": 5, "Layers": ["l.tar"]}]).encode())
        _add(tf, "c.json", cfg)
        _add(tf, "l.tar", lay)
    with pytest.raises(UserError) as exc:
        load_and_unpack(tmp_path / "d.tar", tmp_path / "rootfs")
    assert "$[0].RepoTags: expected array or null, got an integer" in str(exc.value)


def test_working_directory_gone_on_success_and_error(tmp_path, monkeypatch):
    """open_workspace's directory (TMPDIR/leastpriv-image-*) is removed after use and when unpacking fails."""
    from leastpriv.oci.workspace import open_workspace
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    good = image(tmp_path / "good.tar", [layer([("bin", "dir"), ("bin/x", "file", b"x")])],
                 {"Entrypoint": ["/bin/x"]})
    with open_workspace(image=str(good)) as ws:
        assert os.path.isfile(os.path.join(ws.rootfs, "bin", "x"))
    host = tmp_path / "host"
    bad = image(tmp_path / "bad.tar", [layer([("a", "dir"), ("a/sub", "dir", None, {"mode": 0o777}),
                                              ("h", "hardlink", "../host")])])
    with pytest.raises(UserError):
        open_workspace(image=str(bad))
    assert [n for n in os.listdir(tmp_path) if n.startswith("leastpriv-image-")] == []
    assert not host.exists()


def test_layout_directory_with_a_fifo_blob_is_refused(tmp_path):
    """An OCI layout directory whose blob is a fifo (or a device) is refused, not read forever."""
    img = image(tmp_path / "img.tar", [layer([("f", "file", b"x")])])
    d = tmp_path / "layout"
    d.mkdir()
    with tarfile.open(img) as tf:
        tf.extractall(d, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))   # 3.11.4+ (Debian: 3.11.2)
    blob = next(p for p in (d / "blobs" / "sha256").iterdir() if p.stat().st_size > 1000)
    blob.unlink()
    os.mkfifo(blob)
    with pytest.raises(UserError) as exc:
        load_and_unpack(d, tmp_path / "rootfs")
    assert "not a regular file" in str(exc.value)
