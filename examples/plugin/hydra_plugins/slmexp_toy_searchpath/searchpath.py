"""Hydra finds this plug-in in the `hydra_plugins` namespace and adds the package's config tree, so
`runtime=toy`, `quantization=toyq-4bit` and `task=yesno` compose like slmexp's own options.

Hydra imports every module of `hydra_plugins` when it starts, before it composes: the place to register the
`slmexp_toy_data` resolver the task YAML names its shipped rows with.
"""

from importlib.resources import files

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

OmegaConf.register_new_resolver("slmexp_toy_data", lambda rel: str(files("slmexp_toy") / "data" / rel),
                                replace=True)


class SlmexpToySearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="slmexp-toy", path="pkg://slmexp_toy.conf")
