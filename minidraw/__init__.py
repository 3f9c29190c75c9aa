"""minidraw: alignDRAW (Mansimov et al., ICLR 2016) rebuilt piece by piece."""
__version__ = "0.1.0"


def __getattr__(name: str):
    # ``minidraw.device()`` without importing torch on ``import minidraw``
    if name == "device":
        from .runtime import device
        return device
    raise AttributeError(f"module 'minidraw' has no attribute {name!r}")
