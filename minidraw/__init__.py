"""minidraw: alignDRAW (Mansimov et al., ICLR 2016) rebuilt piece by piece."""
__version__ = "0.1.0"
