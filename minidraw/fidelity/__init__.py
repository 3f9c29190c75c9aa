"""Caption fidelity: does a generated picture show what its caption says?

The paper judged its samples by eye and by bounds; neither says whether "the
digit 3 is on the left of the digit 7" came out as a 3 on the left and a 7 on
the right. On the two synthetic data sets the grammar says exactly what must be
where, so small classifiers can check it.

**MNIST with captions.** A caption names one or two digits, each in a *slot*
(:func:`~minidraw.data.mnist_captions.slot_corners`: a 28×28 window whose top-left
corner the data set jitters by 0 to ``jitter`` pixels). For each named digit:

1. *Its region.* Of two named digits each owns the half of the canvas nearer its
   slot (left / right of the middle column, above / below the middle row); the
   other half is blanked for it, so the neighbour's strokes can neither pull
   the window nor be read as part of the digit (:func:`slot_regions`).
2. *Find it.* Among the window corners of its slot — the jitter range widened by
   ``search`` pixels each way — take those holding at least 90 % of the most ink
   any of them holds (the whole digit), and of these the one whose ink's centre
   of mass is nearest the window's centre (14, 14). That is how MNIST itself
   centred its digits (the real test digits' centre of mass sits at (14.0, 14.0)
   ± 0.3 px), so the crop looks like what the classifier was trained on. The
   choice looks at the image only, never at the named digit: a search for "the
   most 3-like window" would find 3s that are not there. A window whose centre
   of mass is still more than ``max_offset`` = 4 px off holds a digit cut by the
   search range — one that is somewhere else — and counts as none.
3. *Read it.* Less than ``min_ink`` of ink (in pixels at full intensity; the
   faintest real digit has 27) is no digit; otherwise :class:`DigitClassifier`, a
   small CNN trained on the MNIST training pool with ±2 pixel shifts and Gaussian
   blurs (:data:`DIGIT_BLURS`), names it. The blurs matter: these generators draw
   soft digits, and trained on sharp digits alone the classifier reads only 90.6 %
   of the test digits right once blurred by σ = 1.2 px (98.5 % with the blurs, at
   the same 98.6–99 % on sharp ones) and takes a blurry 5 for an 8.

A digit is right when it is found and read as the named digit; a caption is
right when all its named digits are. Ink elsewhere is not judged: the captions
do not forbid it.

**Captioned shapes.** A caption names one or two objects (size, colour, shape),
each at a place the layout fixes up to a jitter of at most ±1.6 px per axis
(:func:`~minidraw.data.shapes_grammar.scenes_from_captions` gives these *canonical
centres*), and a background. The background is read as the nearest of the three
to the median colour of the image's outer ring (objects never touch it); a
pixel's *ink* is its distance from that colour. For each named object, at its
canonical centre:

* *shape, size, and whether it is there at all*: :class:`ShapeClassifier`, a
  small CNN, reads a 20×20 crop of the ink map as one of 3 shapes × 2 sizes or
  ``NONE``: no object centred here. It is trained on crops at the places
  captions name — an image's own canonical centres, the same moved up to ±6 px,
  and another caption's centres — labelled with the object whose true centre
  is within 2.5 px, or ``NONE`` when every object is 4 px or more away. So "at
  the named place" means within about 3 px of it. Training scenes are blurred
  in turn by σ = 0, 0.6, 1 px, so a generator's soft edges are no surprise.
  Being colour-blind (ink, not RGB), it finds held-out (shape, colour) pairs
  no harder than seen ones;
* *colour*: a vote of the pixels near the centre (weighted by a Gaussian of the
  named half-side), each for the nearest palette colour; pixels nearer the
  background (anti-aliased edges) do not vote. The palette is known, so nothing
  is learnt;
* and, as a check that needs no learning, at least ``min_cover`` of the disk of
  the named half-side must be foreground (ink >= 0.5; the least a real object
  covers is 0.35).

By default a caption is right when every object is there with the named shape,
colour and size and the background is the named one; ``attributes`` picks a
subset (e.g. ``("shape", "colour")``).

**Chance.** Pair each image with another's caption and a perfect checker still
accepts the few captions that the image happens to satisfy; :func:`mnist_oracle`
and :func:`shapes_oracle` say which, so a scrambled score can be compared with
chance rather than with zero.

**Classifiers** are trained once and cached in ``~/.cache/minidraw/classifiers``
(or ``cache_dir``), in a file named by a hash of the training data (for shapes:
a probe rendering), the settings and :data:`CACHE_VERSION`, written atomically
(temporary file, rename) and read with ``weights_only=True``. The file keeps the
classifier's test accuracy (``model.accuracy``) and where it was trained from
(``model.source``). An unreadable file is retrained, with a warning.

**The package.** :mod:`~minidraw.fidelity.classifiers` (the two CNNs, their training
and the cache), :mod:`~minidraw.fidelity.result` (:class:`FidelityResult`),
:mod:`~minidraw.fidelity.mnist` and :mod:`~minidraw.fidelity.shapes` (the two
checkers). Their public names are importable from ``minidraw.fidelity`` itself; the helpers the
checkers share (training, the cache) stay in :mod:`~minidraw.fidelity.classifiers`.
"""
from .classifiers import CACHE_VERSION, NONE, DigitClassifier, ShapeClassifier, blur
from .mnist import (DIGIT, DIGIT_BLURS, MNIST_TEMPLATE_NAMES, digit_cache_file, digit_classifier, find_digits,
                    mnist_fidelity, mnist_oracle, slot_regions, train_digit_classifier)
from .result import FidelityResult
from .shapes import (BLUR_SIGMAS, RELATIONS_H, SHAPE_ATTRIBUTES, SHAPE_CANVAS, SHAPE_CROP, SHAPES_PLACEMENT_NAMES,
                     background_of, ink_map, shape_cache_file, shape_classifier, shapes_fidelity, shapes_oracle,
                     train_shape_classifier)

__all__ = ["BLUR_SIGMAS", "CACHE_VERSION", "DIGIT", "DIGIT_BLURS", "DigitClassifier", "FidelityResult",
           "MNIST_TEMPLATE_NAMES", "NONE", "RELATIONS_H", "SHAPES_PLACEMENT_NAMES", "SHAPE_ATTRIBUTES", "SHAPE_CANVAS",
           "SHAPE_CROP", "ShapeClassifier", "background_of", "blur", "digit_cache_file", "digit_classifier",
           "find_digits", "ink_map", "mnist_fidelity", "mnist_oracle", "shape_cache_file", "shape_classifier",
           "shapes_fidelity", "shapes_oracle", "slot_regions", "train_digit_classifier", "train_shape_classifier"]
