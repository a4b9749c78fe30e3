"""Symbolic links in an image folder: each real image is read once, or the folder is refused.

torchvision's ImageFolder follows every link. A link to a folder inside the root (`daisy/loop
-> ..`) reads the images again, under another class or in a loop (60 images became 12,300,
validation images among them); a link out of the root reads files the user may not mean.
`check_links` walks the folder as ImageFolder will and refuses, in one line, a link whose
files would be read twice; links out of the root are followed only with `data.follow_links`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lrlab.errors import ConfigError


def check_links(root: Path, key: str, follow_links: bool) -> None:
    """Refuse (ConfigError) a link in `root` that ImageFolder would follow to a file it reads
    anyway, or out of `root` unless `follow_links`."""
    real_root = Path(os.path.realpath(root))
    seen_dirs: set[Path] = {real_root}  # real folders walked (a link out of the root: its own)
    seen_files: set[Path] = set()  # real files reached through links
    pending = [(root, real_root)]
    while pending:
        folder, real_folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.is_symlink():
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((Path(entry.path), real_folder / entry.name))
                    continue
                target = Path(os.path.realpath(entry.path))
                if not target.exists():
                    continue  # a broken link: ImageFolder skips it too
                link = Path(entry.path).relative_to(root)
                inside = target.is_relative_to(real_root)
                if inside or target in seen_files or _overlaps(target, seen_dirs):
                    loop = real_folder.is_relative_to(target)
                    raise ConfigError(
                        f"{key}: {link} is a link to {target}, "
                        + ("a folder above it: a loop" if loop else "which is read already")
                        + f"; its images would be read more than once: remove the link from {root}"
                    )
                if not follow_links:
                    raise ConfigError(
                        f"{key}: {link} is a link out of {root} (to {target}); set "
                        "data.follow_links=true to read it, or copy the images in"
                    )
                if target.is_dir():
                    seen_dirs.add(target)
                    pending.append((Path(entry.path), target))
                else:
                    seen_files.add(target)


def _overlaps(path: Path, folders: set[Path]) -> bool:
    """`path` is in one of `folders`, or holds one: their files would be read twice."""
    return any(path.is_relative_to(f) or f.is_relative_to(path) for f in folders)
