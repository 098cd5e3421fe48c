"""The simulated demo dataset, written in the SNU layout (see ``data.snu``), plus a held-out leaderboard.

Each file is one simulated multi-coil scan: anatomy from ``data.demo.phantoms`` in a per-file contrast with
a smooth complex phase, seen by a per-file number of surface coils with smooth complex sensitivities,
Fourier transformed with 2x readout oversampling (the object fills the central half of H), plus
complex Gaussian k-space noise of a per-file level. The target is the RSS of the fully sampled coil
images cropped to ``target_shape``, scaled to the challenge's absolute intensity range; the mask is
equispaced with a per-file offset.

Layout::

    ROOT/{train,val}/kspace/{brain,knee}_acc{4,8}_{N}.h5      kspace fully sampled, mask (W,)
    ROOT/{train,val}/image/<same name>.h5                      image_label, image_input, attrs max
    ROOT/leaderboard/acc{4,8}/kspace/{brain,knee}_test{i}.h5   kspace already undersampled, mask (W,)
    ROOT/leaderboard/acc{4,8}/image/<same name>.h5             as in train/val
    ROOT/demo_spec.json

Train/val k-space is stored fully sampled with a separate mask, as in the challenge's train/val sets.
Leaderboard k-space is stored with the mask applied (zero-filled columns), as held-out test data
comes, so nothing can train on its missing columns; each leaderboard scan appears in both acc4/
and acc8/ under its own mask. The search reads only train/ and val/. Image files also carry the
scan's simulated protocol as attributes ``acquisition`` (contrast name) and ``noise_std``.
"""

from data.demo.spec import GENERATOR_VERSION, DemoSpec
from data.demo.writer import LEADERBOARD_DIR, SPEC_FILE, ensure_demo_dataset, write_demo_dataset

__all__ = ["GENERATOR_VERSION", "LEADERBOARD_DIR", "SPEC_FILE", "DemoSpec", "ensure_demo_dataset",
           "write_demo_dataset"]
