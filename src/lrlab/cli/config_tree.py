"""The composed config as a rich tree at the start of a run (`extras.print_config`), one
branch per top-level key, as lightning-hydra-template prints it."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

# The groups a reader looks for first; the remaining keys follow in the config's order.
FIRST = ("data", "augment", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger")


def config_tree(cfg: DictConfig, first: Sequence[str] = FIRST):
    """A rich Tree of `cfg` (interpolations resolved where they can be)."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in first if k in cfg] + [k for k in cfg if k not in first]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        node = cfg.get(key)
        if isinstance(node, DictConfig):
            try:
                text = OmegaConf.to_yaml(node, resolve=True)
            except Exception:  # an unresolvable value: show it as written
                text = OmegaConf.to_yaml(node)
        else:
            text = str(node)
        branch.add(Syntax(text.rstrip() or "{}", "yaml", theme="ansi_dark"))
    return tree


def print_config(cfg: DictConfig) -> None:
    from rich import print as rich_print

    rich_print(config_tree(cfg))
