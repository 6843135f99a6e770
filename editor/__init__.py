"""Semantic face editing with StyleGAN2.

The package is layered: networks (`stylegan2`), model sources (`checkpoints`), the demo world (`toonfaces`,
`attributes`), training (`train/`), direction science (`directions`, `bank`, `labelers`), photos (`align`,
`projection`), the interactive backend (`engine`), metrics, and the CLI (`commands/`, run as `python -m editor`).

Heavy modules are imported lazily so that `import editor` stays cheap.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_generator": ("editor.checkpoints", "load_generator"),
    "save_generator": ("editor.checkpoints", "save_generator"),
    "load_network": ("editor.checkpoints", "load_network"),
    "model_id": ("editor.checkpoints", "model_id"),
    "Generator": ("editor.stylegan2", "Generator"),
    "Discriminator": ("editor.stylegan2", "Discriminator"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'editor' has no attribute {name!r}")
