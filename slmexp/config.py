"""Config checks: the `${slmexp_data:}` resolver and early validation of the composed config.

Validation runs before any model loads so that a typo costs a second, not a model conversion. The keys' types,
ranges and choices are declared in slmexp.schema, which also runs the cross-key rules and each plug-in's `check`
(slmexp.schema.rules), so this module names no backend. Errors name the dotted key and the file:line (or
command-line override) that set it (slmexp.origin).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from slmexp.origin import CONF_DIR, CONF_PKG, PACKAGE_DIR, REPO_ROOT, fail, key_origin

__all__ = ["CONF_DIR", "CONF_PKG", "DATA_DIR", "REPO_ROOT", "fail", "key_origin", "register_resolvers", "validate"]

DATA_DIR = PACKAGE_DIR / "tasks" / "data"

def register_resolvers() -> None:
    """Register `${slmexp_data:}` (the package's data dir) once; safe to call repeatedly."""
    if not OmegaConf.has_resolver("slmexp_data"):
        OmegaConf.register_new_resolver("slmexp_data", lambda: str(DATA_DIR))


register_resolvers()


def validate(cfg: DictConfig) -> None:
    """Check the composed config before any stage runs (slmexp.schema: the declared schema, then the cross-key
    rules and the plug-ins' checks); raise ConfigErrors naming every bad key at once."""
    from slmexp import schema

    schema.validate(cfg)
