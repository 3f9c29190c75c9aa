"""The three captioned data sets: MNIST with captions, captioned shapes, MS-COCO."""
from .coco import CocoCaptions
from .common import CaptionBatch
from .mnist import DigitPools, MnistError, digit_pools, load_mnist
from .mnist_captions import MnistCaptions
from .shapes import ShapesCaptions

__all__ = ["CaptionBatch", "CocoCaptions", "DigitPools", "MnistCaptions", "MnistError", "ShapesCaptions",
           "digit_pools", "load_mnist"]
