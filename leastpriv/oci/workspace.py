"""Where a container run's files live: an unpacked image or a user's bundle, ready for runc here."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from . import bundle as bdl
from .image import ImageConfig, UnpackReport, load_and_unpack


@dataclass
class Workspace:
    bundle: str                 # directory whose rootfs runc uses
    rootfs: str
    conf: dict                  # the config to run (never written over the user's config.json)
    target: str                 # "image:FILE" | "bundle:DIR"
    name: str
    image: ImageConfig | None = None
    unpack: UnpackReport | None = None
    changes: tuple[str, ...] = ()
    _tmp: str | None = None

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_STOPS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT}


def open_workspace(*, image: str | None = None, bundle: str | None = None, args: Sequence[str] = (),
                   network: str = "loopback", keep: str | None = None,
                   overrides: "bdl.Overrides | None" = None) -> Workspace:
    if bool(image) == bool(bundle):
        raise UserError("give exactly one of --image FILE or --bundle DIR")
    if image:
        tmp = None
        # a stop signal (SIGTERM raises through app.signals_unwind) between creating the directory and the
        # ``try`` that removes it would leave it behind: the signals wait until the ``try`` has begun
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            try:
                if keep:
                    base = Path(keep)
                    base.mkdir(parents=True, exist_ok=True)
                else:
                    base = Path(tempfile.mkdtemp(prefix="leastpriv-image-", dir=os.environ.get("TMPDIR", "/var/tmp")))
                    tmp = str(base)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.chmod(base, 0o700)
            rootfs = base / "rootfs"
            cfg, report = load_and_unpack(image, rootfs)
            conf = bdl.config_from_image(cfg, str(rootfs), args, network=network,
                                         overrides=overrides or bdl.Overrides())
            if keep:
                bdl.save_config(base, conf)
        except BaseException:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Workspace(str(base), str(rootfs), conf, f"image:{os.path.abspath(image)}", cfg.name or image,
                         cfg, report, (), tmp)
    conf = bdl.load_config(bundle)
    ov = overrides or bdl.Overrides()
    conf, changes = bdl.prepare_for_here(conf, () if ov.entrypoint is not None else args)
    root = conf["root"]["path"]
    rootfs = root if os.path.isabs(root) else os.path.join(os.path.abspath(bundle), root)
    if not os.path.isdir(rootfs):
        raise UserError(f"{bundle}: root.path {root!r} is not a directory")
    if ov != bdl.Overrides():
        conf = bdl.apply_overrides(conf, rootfs, ov, args)
    return Workspace(os.path.abspath(bundle), rootfs, conf, f"bundle:{os.path.abspath(bundle)}",
                     os.path.basename(os.path.abspath(bundle)), None, None, tuple(changes), None)
