"""Containers end to end: images built here (no registry), learned under runc, verified, reviewed.

Needs root and runc (CI runs as root). Images: a busybox rootfs (Debian's
busybox-static) plus a small static C program of these tests, packed as an
OCI image layout and as a `docker save` archive.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.conftest import lp, need_root, which

BUSYBOX = "/bin/busybox"


# ------------------------------------------------------------------ image building

def _add(tf: tarfile.TarFile, name: str, data: bytes | None = None, **kw) -> None:
    ti = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(ti, k, v)
    if data is not None and ti.type == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def layer(entries: list[tuple]) -> bytes:
    """entries: (name, kind, payload, extra) with kind in file/dir/symlink/hardlink/chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, kind = e[0], e[1]
            payload = e[2] if len(e) > 2 else None
            extra = e[3] if len(e) > 3 else {}
            if kind == "file":
                _add(tf, name, payload, mode=extra.get("mode", 0o755))
            elif kind == "dir":
                _add(tf, name, None, type=tarfile.DIRTYPE, mode=extra.get("mode", 0o755))
            elif kind == "symlink":
                _add(tf, name, None, type=tarfile.SYMTYPE, linkname=payload)
            elif kind == "hardlink":
                _add(tf, name, None, type=tarfile.LNKTYPE, linkname=payload)
            elif kind == "chr":
                _add(tf, name, None, type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    return buf.getvalue()


def base_layer(app: Path | None) -> bytes:
    entries = [("bin", "dir"), ("bin/busybox", "file", Path(BUSYBOX).read_bytes()), ("bin/sh", "symlink", "busybox"),
               ("etc", "dir"), ("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
                                {"mode": 0o644}),
               ("etc/group", "file", b"root:x:0:\napp:x:1000:\n", {"mode": 0o644}),
               ("tmp", "dir", None, {"mode": 0o1777}), ("proc", "dir"), ("sys", "dir"), ("dev", "dir")]
    if app:
        entries.append(("app", "file", app.read_bytes()))
    return layer(entries)


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def oci_archive(path: Path, layers: list[bytes], config: dict, sizes: list[int] | None = None,
                gzip_layers: bool = False) -> Path:
    if gzip_layers:
        import gzip
        diff_ids = [_sha(x) for x in layers]
        layers = [gzip.compress(x, mtime=0) for x in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                      "rootfs": {"type": "layers", "diff_ids": diff_ids if gzip_layers else [_sha(x) for x in layers]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(cfg),
                                      "size": len(cfg)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else ""),
                                       "digest": _sha(x),
                                       "size": (sizes[i] if sizes else len(x))} for i, x in enumerate(layers)]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                           "digest": _sha(manifest), "size": len(manifest),
                                                           "annotations": {"org.opencontainers.image.ref.name": "test:1"}}]}).encode()
    with tarfile.open(path, "w") as tf:
        _add(tf, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(tf, "index.json", index)
        _add(tf, "blobs", None, type=tarfile.DIRTYPE)
        _add(tf, "blobs/sha256", None, type=tarfile.DIRTYPE)
        for blob in [cfg, manifest, *layers]:
            _add(tf, "blobs/sha256/" + _sha(blob)[7:], blob)
    return path


def docker_archive(path: Path, layers: list[bytes], config: dict) -> Path:
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                      "rootfs": {"type": "layers", "diff_ids": [_sha(x) for x in layers]}}).encode()
    names = [f"{hashlib.sha256(x).hexdigest()}/layer.tar" for x in layers]
    manifest = json.dumps([{"Config": _sha(cfg)[7:] + ".json", "RepoTags": ["test:docker"], "Layers": names}]).encode()
    with tarfile.open(path, "w") as tf:
        _add(tf, "manifest.json", manifest)
        _add(tf, _sha(cfg)[7:] + ".json", cfg)
        for n, x in zip(names, layers):
            _add(tf, n.split("/")[0], None, type=tarfile.DIRTYPE)
            _add(tf, n, x)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import subprocess
    src = Path(__file__).parent / "workloads" / "container_app.c"
    out = tmp_path_factory.mktemp("capp") / "container_app"
    subprocess.run(["gcc", "-O1", "-static", "-o", str(out), str(src)], check=True)
    return out


APP_CONFIG = {"Entrypoint": ["/app"], "WorkingDir": "/tmp", "Env": ["PATH=/bin"]}


# ------------------------------------------------------------------ untrusted layers

def _unpack(tmp_path, layers, sizes=None):
    from leastpriv.oci.image import load_and_unpack
    img = oci_archive(tmp_path / "img.tar", layers, {"Cmd": ["/bin/sh"]}, sizes)
    return load_and_unpack(img, tmp_path / "rootfs")


def _outside_untouched(tmp_path: Path, marker: Path) -> None:
    assert not marker.exists(), f"{marker} was written outside the rootfs"


@pytest.mark.parametrize("name", ["/abs-evil", "../evil", "a/../../evil", "./../evil"])
def test_member_names_outside_refused(tmp_path, name):
    from leastpriv.errors import UserError
    with pytest.raises(UserError) as exc:
        _unpack(tmp_path, [layer([("a", "dir"), (name, "file", b"x")])])
    assert "refused" in str(exc.value) and ("absolute" in str(exc.value) or "'..'" in str(exc.value))
    assert not (tmp_path / "evil").exists() and not Path("/abs-evil").exists()


def test_symlink_from_earlier_layer_is_resolved_inside_rootfs(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    l1 = layer([("etc", "symlink", str(outside)), ("up", "symlink", "../../../../../../" + str(outside)[1:])])
    l2 = layer([("etc/passwd", "file", b"pwned"), ("up/x", "file", b"pwned")])
    _cfg, report = _unpack(tmp_path, [l1, l2])
    assert list(outside.iterdir()) == [], "a layer wrote through a symlink out of the rootfs"
    root = tmp_path / "rootfs"
    # the files land where the container sees them: inside its own root
    assert (root / str(outside)[1:] / "passwd").read_bytes() == b"pwned"
    assert (root / str(outside)[1:] / "x").read_bytes() == b"pwned"
    assert os.readlink(root / "etc") == str(outside)    # kept as the image had it, never followed on the host
    assert any("never followed" in n for n in report.neutralized)


def test_hardlink_out_of_rootfs_refused_and_through_symlink_stays_inside(tmp_path):
    from leastpriv.errors import UserError
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    with pytest.raises(UserError) as exc:
        _unpack(tmp_path, [layer([("h", "hardlink", "../secret")])])
    assert "refused" in str(exc.value)
    os.system(f"rm -rf {tmp_path}/rootfs")
    # a hardlink whose target path goes through an absolute symlink: resolved inside the rootfs -> no such file
    with pytest.raises(UserError) as exc:
        _unpack(tmp_path, [layer([("d", "symlink", str(tmp_path))]), layer([("h", "hardlink", "d/secret")])])
    assert "not in the rootfs" in str(exc.value)
    assert secret.stat().st_nlink == 1


def test_devices_setuid_whiteouts(tmp_path):
    l1 = layer([("bin", "dir"), ("bin/su", "file", b"#!", {"mode": 0o4755}), ("dev", "dir"), ("dev/mem", "chr"),
                ("old", "dir"), ("old/a", "file", b"a"), ("gone", "file", b"g"), ("keep", "file", b"k")])
    l2 = layer([("old/.wh..wh..opq", "file", b""), ("old/b", "file", b"b"), (".wh.gone", "file", b"")])
    _cfg, report = _unpack(tmp_path, [l1, l2])
    root = tmp_path / "rootfs"
    assert not (root / "dev" / "mem").exists() and "/dev/mem" in report.devices_skipped
    assert (root / "bin" / "su").stat().st_mode & 0o7777 == 0o755
    assert report.setuid_files == ["/bin/su (0o4755)"]
    assert sorted(os.listdir(root / "old")) == ["b"]
    assert not (root / "gone").exists() and (root / "keep").exists()
    assert not any(n.startswith(".wh.") for n in os.listdir(root))


def test_sizes_that_lie_are_refused(tmp_path):
    from leastpriv.errors import UserError
    good = layer([("f", "file", b"0123456789" * 100)])
    # 1) the tar member claims more data than the archive has
    truncated = good[:700]
    with pytest.raises(UserError) as exc:
        _unpack(tmp_path, [truncated])
    assert "refused" in str(exc.value)
    assert not (tmp_path / "rootfs" / "f").exists() or (tmp_path / "rootfs" / "f").stat().st_size < 1000
    # 2) the descriptor claims another size than the blob has
    os.system(f"rm -rf {tmp_path}/rootfs")
    with pytest.raises(UserError) as exc:
        _unpack(tmp_path, [good], sizes=[len(good) + 512])
    assert "descriptor claims" in str(exc.value)


# ------------------------------------------------------------------ runc end to end

def _profile_without(path: Path, name: str, out: Path) -> Path:
    d = json.loads(path.read_text())
    for arch, names in d["rules"]["syscalls"].items():
        if name in names:
            names.remove(name)
    out.write_text(json.dumps(d))
    return out


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_learn_verify_image(tmp_path, app, kind):
    need_root()
    which("runc")
    layers = [base_layer(app)]
    img = (oci_archive if kind == "oci" else docker_archive)(tmp_path / f"{kind}.tar", layers, APP_CONFIG)
    prof = tmp_path / "app.lp.json"
    r = lp("learn", "--image", str(img), "-o", str(prof), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "app ok on leastpriv in /tmp\n", r.stdout   # the container's stdout is ours
    shown = lp("show", str(prof), check=True).stdout
    assert "runtime base (runc 1.1.5" in shown and "fstatfs" in shown.split("runtime base", 1)[1]
    names = set(json.loads(prof.read_text())["rules"]["syscalls"]["x86_64"])
    assert {"uname", "getcwd", "execve"} <= names
    assert not {"mount", "pivot_root", "capset"} & names, "runc's own setup leaked into the workload's profile"
    files = json.loads(prof.read_text())["facts"]["files"]
    assert set(files) == {"/app", "/tmp/app.out"}, files

    ok = lp("verify", "--image", str(img), "--profile", str(prof), "--json", timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    v = json.loads(ok.stdout)
    assert v["ok"] and v["denials"] == [] and v["enforce"]["exit_status"] == 0

    # export: the runtime base is added by default for a container profile, and not with --runtime none
    def names(*extra):
        out = lp("export", str(prof), "--format", "oci", *extra, check=True).stdout
        return {n for r in json.loads(out)["linux"]["seccomp"]["syscalls"] for n in r["names"]}
    with_base, without = names(), names("--runtime", "none")
    assert {"fstatfs", "getdents64"} <= with_base - without

    if kind == "oci":
        # one syscall the app needs removed: verify fails and names it, as the workload's
        bad = _profile_without(prof, "uname", tmp_path / "no-uname.json")
        r = lp("verify", "--image", str(img), "--profile", str(bad), "--json", timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        v = json.loads(r.stdout)
        assert [(d["syscall"], d["by"]) for d in v["denials"]] == [("uname", "workload")]
        assert "denied uname" in r.stderr
        # runtime base removed: runc cannot start the container, and verify says so
        r = lp("verify", "--image", str(img), "--profile", str(prof), "--runtime", "none", "--json", timeout=120)
        assert r.returncode == 1
        v = json.loads(r.stdout)
        assert v["denials"] and all(d["by"] == "runtime" for d in v["denials"])
        assert not v["enforce"]["started"] or v["enforce"]["exit_status"] != 0
        assert "runtime itself needs" in r.stderr


def test_review_image_root_unused_caps(tmp_path, app):
    need_root()
    which("runc")
    img = oci_archive(tmp_path / "img.tar", [base_layer(app), layer([("bin/ping", "file", b"x", {"mode": 0o4755})])],
                      APP_CONFIG)
    r = lp("review", "--image", str(img), "--format", "json", timeout=180)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["runs_as_root"] is True
    assert rep["capabilities"]["used"] == [] and rep["capabilities"]["proved_by_run"] is True
    assert len(rep["capabilities"]["unused_defaults"]) == 14
    assert any("never uses its default capabilities" in f for f in rep["findings"])
    assert any(f.startswith("runs as root") for f in rep["findings"])
    assert rep["rootfs"]["setuid_setgid_files"] == ["/bin/ping (0o4755)"]
    assert "ptrace" in rep["syscalls"]["docker_default_allows_unused"] or rep["syscalls"]["docker_default_allows_unused"]
    sc = rep["artifacts"]["kubernetes"]["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    # the human report says the same
    r2 = lp("review", "--image", str(img), "--format", "markdown", timeout=180)
    assert "never uses its default capabilities" in r2.stdout and "**root**" in r2.stdout


def test_capability_learned_verified_and_named_when_missing(tmp_path):
    need_root()
    which("runc")
    from leastpriv.tracer.container import _ebpf_backend
    if _ebpf_backend()[0] is None:
        pytest.fail(f"eBPF is not usable: {_ebpf_backend()[1]} (make install)")
    cfg = {"Cmd": ["/bin/sh", "-c", "busybox touch /tmp/f && busybox chown 1000 /tmp/f && echo chowned"]}
    img = oci_archive(tmp_path / "chown.tar", [base_layer(None)], cfg)
    prof = tmp_path / "chown.lp.json"
    r = lp("learn", "--image", str(img), "-o", str(prof), timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(prof.read_text())
    assert d["rules"]["capabilities"] == ["CAP_CHOWN"]
    ok = lp("verify", "--image", str(img), "--profile", str(prof), "--json", timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    d["rules"]["capabilities"] = []
    bad = tmp_path / "nocaps.json"
    bad.write_text(json.dumps(d))
    r = lp("verify", "--image", str(img), "--profile", str(bad), "--json", timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    v = json.loads(r.stdout)
    assert [(x["kind"], x["syscall"]) for x in v["denials"]] == [("capability", "CAP_CHOWN")]
    assert v["enforce"]["exit_status"] != 0
    assert "denied CAP_CHOWN" in r.stderr


def test_learn_bundle_args(tmp_path, app):
    need_root()
    which("runc")
    bundle = tmp_path / "bundle"
    from leastpriv.oci.image import load_and_unpack
    from leastpriv.oci.bundle import config_from_image, save_config
    img = oci_archive(tmp_path / "img.tar", [base_layer(app)], APP_CONFIG)
    cfg, _ = load_and_unpack(img, bundle / "rootfs")
    conf = config_from_image(cfg, str(bundle / "rootfs"))
    conf["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]   # as `runc spec` writes
    save_config(bundle, conf)
    before = (bundle / "config.json").read_text()
    prof = tmp_path / "b.lp.json"
    r = lp("learn", "--bundle", str(bundle), "-o", str(prof), "--", "/bin/busybox", "uname", "-n", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "process.rlimits dropped" in r.stderr and "leastpriv" in r.stderr
    assert (bundle / "config.json").read_text() == before, "the user's config.json was modified"
    d = json.loads(prof.read_text())
    assert "uname" in d["rules"]["syscalls"]["x86_64"] and d["runs"][0]["target"].startswith("bundle:")


def test_gzip_layers_and_seccomp_notify_backend_and_verify_bundle(tmp_path, app):
    need_root()
    which("runc")
    img = oci_archive(tmp_path / "gz.tar", [base_layer(app)], APP_CONFIG, gzip_layers=True)
    prof = tmp_path / "n.lp.json"
    r = lp("learn", "--image", str(img), "--backend", "seccomp-notify", "-o", str(prof), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "backend seccomp-notify (asked for)" in r.stderr and "write is assumed" in r.stderr
    d = json.loads(prof.read_text())
    names = set(d["rules"]["syscalls"]["x86_64"])
    assert {"uname", "getcwd", "execve", "openat"} <= names
    assert not {"fstatfs", "getdents64", "epoll_ctl", "capset"} & names, "runc's init calls attributed to the app"
    assert d["runs"][0]["backend"] == "seccomp-notify"
    # the same profile verifies a bundle of that image
    from leastpriv.oci.bundle import config_from_image, save_config
    from leastpriv.oci.image import load_and_unpack
    bundle = tmp_path / "bundle"
    cfg, _ = load_and_unpack(img, bundle / "rootfs")
    save_config(bundle, config_from_image(cfg, str(bundle / "rootfs")))
    v = lp("verify", "--bundle", str(bundle), "--profile", str(prof), timeout=120)
    assert v.returncode == 0, v.stderr
    assert not (bundle / "rootfs" / "tmp" / "app.out").exists(), "verify's runs wrote into the user's rootfs"


def test_docker_save_layer_must_match_its_diff_id(tmp_path):
    from leastpriv.oci.image import load_and_unpack
    from leastpriv.errors import UserError
    good = layer([("f", "file", b"data")])
    img = docker_archive(tmp_path / "d.tar", [good], {"Cmd": ["/bin/sh"]})
    load_and_unpack(img, tmp_path / "ok")
    # swap the layer's content for another of the same name: the diff_id no longer matches
    evil = layer([("f", "file", b"evil")])
    with tarfile.open(img) as src, tarfile.open(tmp_path / "e.tar", "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isreg() else None
            if m.name.endswith("layer.tar"):
                m.size = len(evil)
                f = io.BytesIO(evil)
            dst.addfile(m, f)
    with pytest.raises(UserError) as exc:
        load_and_unpack(tmp_path / "e.tar", tmp_path / "bad")
    assert "sha256 does not match" in str(exc.value)


def test_container_stdio_and_overrides_like_docker_run(tmp_path):
    """learn --image IMG -- echo hi prints hi on stdout and nothing else there; stderr is stderr; -i gives
    stdin; -e/--workdir/--user/--entrypoint override the image like docker run; verify passes the enforced
    run's output through the same way (and keeps stdout for JSON with --json)."""
    import subprocess
    import sys

    need_root()
    which("runc")
    base = base_layer(None)
    img = oci_archive(tmp_path / "img.tar", [base, layer([("bin/echo", "symlink", "busybox"),
                                                           ("bin/cat", "symlink", "busybox")])],
                      {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"})
    prof = tmp_path / "hi.json"
    r = lp("learn", "--image", str(img), "-o", str(prof), "--", "echo", "hi", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n", r.stdout
    assert "leastpriv:" in r.stderr and "hi" not in r.stderr.replace("hi.json", "")

    # stdout to stdout, stderr to stderr, exit status through
    r = lp("learn", "--image", str(img), "-o", str(tmp_path / "o.json"), "--", "sh", "-c",
           "echo out; echo err >&2; exit 3", timeout=120)
    assert (r.returncode, r.stdout) == (3, "out\n") and "err\n" in r.stderr, r.stderr

    # -e, --workdir, --user, --entrypoint (Cmd then unused; ARGS follow the entrypoint)
    r = lp("learn", "--image", str(img), "-o", str(tmp_path / "e.json"), "-e", "FOO=bar", "-e", "LP_FROM_HERE",
           "--workdir", "/tmp", "--user", "app", "--entrypoint", "/bin/sh", "--",
           "-c", "echo $FOO $LP_FROM_HERE $(pwd) $(busybox id -u):$(busybox id -g)", timeout=120,
           env={**os.environ, "LP_FROM_HERE": "passed"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bar passed /tmp 1000:1000\n", r.stdout

    # stdin: /dev/null unless -i
    def learn_cat(*flags):
        return subprocess.run([sys.executable, "-m", "leastpriv", "learn", "--image", str(img), "-o",
                               str(tmp_path / "c.json"), *flags, "--", "cat"], input="from stdin\n",
                              capture_output=True, text=True, timeout=120)
    assert learn_cat().stdout == ""
    r = learn_cat("-i")
    assert (r.returncode, r.stdout) == (0, "from stdin\n"), r.stderr

    # verify: the enforced run's output is ours; with --json stdout is the verdict alone
    r = lp("verify", "--image", str(img), "--profile", str(prof), "--", "echo", "hi", timeout=120)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = lp("verify", "--image", str(img), "--profile", str(prof), "--format", "json", "--", "echo", "hi",
           timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True and "hi" in r.stderr

    # the overrides belong to containers: a usage error elsewhere
    r = lp("learn", "-e", "A=1", "--", "true")
    assert r.returncode == 2 and "only with --image or --bundle" in r.stderr
