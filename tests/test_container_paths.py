"""A container is seen from inside (root, runc, eBPF): `learn --image` / `--bundle` of a busybox image
record the container's own paths (/bin/busybox, /etc/passwd of the image), never a host path and never a
leastpriv process; the exports and the image review name those paths."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from leastpriv.tracer.recording import Recording

from .conftest import lp, need_root, which
from .test_container import base_layer, oci_archive

pytestmark = pytest.mark.timeout(300)
CMD = ["/bin/sh", "-c", "cat /etc/passwd > /dev/null; ls /bin > /dev/null; cd /etc && cat group > /dev/null"]


@pytest.fixture(autouse=True)
def _root():
    need_root()
    which("runc")
    from leastpriv.tracer.ebpf import usable_reason
    why = usable_reason()
    if why:
        pytest.fail(f"eBPF is not usable here ({why}); `make install` sets it up")


def _rootfs(tmp_path: Path, img: Path) -> Path:
    from leastpriv.oci.image import load_and_unpack
    root = tmp_path / "unpacked"
    load_and_unpack(img, root)
    return root


def _inside(rec: Recording, rootfs: Path) -> None:
    """Every path is the container's: it exists in the image (or is a kernel file system's), none is the host's."""
    assert rec.execs == ("/bin/busybox",), rec.execs
    assert set(rec.executables) == {"/bin/busybox"}, set(rec.executables)
    for p in rec.files:
        if p.startswith(("/dev/", "/proc/")):
            continue
        assert os.path.lexists(str(rootfs) + p), f"{p} is not in the image"
    assert {"/etc/passwd", "/etc/group", "/bin"} <= set(rec.files)
    assert rec.files["/bin/busybox"] >= {"exec"}
    assert not [n for n in rec.notes if "left out" in n], rec.notes


def _exports_name_container_paths(prof: Path) -> None:
    aa = lp("export", str(prof), "--format", "apparmor", check=True).stdout
    assert "/bin/busybox" in aa and "/etc/passwd r," in aa, aa
    assert "/usr/bin/dash" not in aa and "/usr/lib" not in aa, aa
    ll = json.loads(lp("export", str(prof), "--format", "landlock", check=True).stdout)
    parents = {p for rule in ll["pathBeneath"] for p in rule["parent"]}
    assert "/bin/busybox" in parents and "/etc/passwd" in parents, parents
    assert not any(p.startswith(("/usr/", "/tmp/pytest")) for p in parents), parents


def test_learn_image_records_the_container_s_own_paths(tmp_path):
    img = oci_archive(tmp_path / "img.tar", [base_layer(None)], {"Cmd": CMD, "Env": ["PATH=/bin"]})
    prof, rec = tmp_path / "p.json", tmp_path / "r.json"
    r = lp("learn", "--image", str(img), "-o", str(prof), "--save-recording", str(rec), timeout=120)
    assert r.returncode == 0, r.stderr
    _inside(Recording.load(str(rec)), _rootfs(tmp_path, img))
    _exports_name_container_paths(prof)
    review = lp("review", "--image", str(img), "--format", "json", timeout=180)
    assert review.returncode == 0, review.stderr
    text = review.stdout
    assert "/bin/busybox" in text and "/etc/passwd" in text, "the review does not name the container's paths"
    assert "/usr/bin/dash" not in text and "python" not in text.lower(), "a host path in the image review"


def test_learn_bundle_records_the_container_s_own_paths(tmp_path):
    from leastpriv.oci.bundle import config_from_image, save_config
    from leastpriv.oci.image import load_and_unpack
    img = oci_archive(tmp_path / "img.tar", [base_layer(None)], {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]})
    bundle = tmp_path / "bundle"
    cfg, _ = load_and_unpack(img, bundle / "rootfs")
    save_config(bundle, config_from_image(cfg, str(bundle / "rootfs")))
    prof, rec = tmp_path / "b.json", tmp_path / "rb.json"
    r = lp("learn", "--bundle", str(bundle), "-o", str(prof), "--save-recording", str(rec), "--", *CMD, timeout=120)
    assert r.returncode == 0, r.stderr
    _inside(Recording.load(str(rec)), bundle / "rootfs")
    _exports_name_container_paths(prof)
