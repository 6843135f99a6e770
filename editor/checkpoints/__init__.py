"""Model sources: load and save StyleGAN2 networks without ever running code from a file.

`load_generator(source, device)` accepts:

* a native checkpoint: a directory holding `state.safetensors` (reference parameter names) and `config.json`
  (`init_kwargs`: the constructor arguments), or a single `.safetensors` file whose metadata key `config` holds
  that JSON. `save_generator` / `save_network` write this format.
* a reference network pickle (`.pkl`, the StyleGAN2-ADA / StyleGAN3 format NVIDIA publishes). It is read by a
  restricted unpickler: only an allow-list of globals is resolved (to inert stand-ins or tensor rebuilders), the
  module source embedded in the file is kept as text and never executed, and anything else is refused. Old
  TensorFlow StyleGAN2 generator pickles are read the same way and converted with the public name mapping.
* an `https://` (or `http://`) URL or `hf://owner/repo[@revision]/path/to/file`, downloaded once into a cache
  directory (`STYLEGAN2_EDITOR_CACHE`, default `~/.cache/stylegan2-editor`; the Hugging Face cache for `hf://`).
* a registry name (`ffhq-1024`, `ffhq-512`, `ffhq-256`, `demo`; see `list_models()`), or
  `random:<config>[:seed]` for random weights of any `editor.stylegan2.CONFIGS` entry.

Every load builds a fresh network from the checkpoint's own constructor arguments and copies the tensors in with
strict name/shape checking, so a file either loads completely or raises; a half-loaded model never escapes.

Modules: `registry` (named models, licences, cache), `unpickle` (the restricted pickle reader), `reference` (what
a reference pickle's networks are), `build` (networks from constructor arguments, strict loading, identity),
`native` (the safetensors + JSON format), `download` (sources to local paths), `load` (the entry points).
"""

from __future__ import annotations

from editor.checkpoints.build import count_parameters, model_id
from editor.checkpoints.download import (
                                         OFFLINE_ENV,
                                         download_url,
                                         resolve_source,
                                         url_cache_path,
)
from editor.checkpoints.errors import (
                                         CheckpointError,
                                         ModelUnavailableError,
                                         UnsafePickleError,
)
from editor.checkpoints.load import KINDS, load_generator, load_network
from editor.checkpoints.native import (
                                         CONFIG_FILE,
                                         FORMAT_NAME,
                                         FORMAT_VERSION,
                                         STATE_FILE,
                                         save_generator,
                                         save_network,
)
from editor.checkpoints.registry import (
                                         CACHE_ENV,
                                         DEMO_DIR,
                                         REGISTRY,
                                         REPO_ROOT,
                                         ModelInfo,
                                         cache_dir,
                                         list_models,
                                         model_info,
                                         registry_entry_for,
)
from editor.checkpoints.unpickle import (
                                         PersistentObject,
                                         TFNetwork,
                                         read_reference_pickle,
)

__all__ = [
    "CheckpointError",
    "UnsafePickleError",
    "ModelUnavailableError",
    "ModelInfo",
    "REGISTRY",
    "list_models",
    "model_info",
    "registry_entry_for",
    "cache_dir",
    "load_generator",
    "load_network",
    "save_generator",
    "save_network",
    "read_reference_pickle",
    "resolve_source",
    "download_url",
    "model_id",
    "count_parameters",
    "url_cache_path",
    "PersistentObject",
    "TFNetwork",
    "KINDS",
    "CACHE_ENV",
    "OFFLINE_ENV",
    "DEMO_DIR",
    "REPO_ROOT",
    "STATE_FILE",
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]
