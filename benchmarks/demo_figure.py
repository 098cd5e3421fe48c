"""Draw one brain and one knee slice of the default demo dataset, target over zero-filled input.

    python benchmarks/demo_figure.py                      # writes benchmarks/demo_slices.png
    python benchmarks/demo_figure.py --data DIR --out x.png

With no --data, the default DemoSpec is simulated into a temporary directory. The slices are the
middle ones of the first validation file of each organ at acceleration --acc.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")  # headless: the figure only goes to a file
import matplotlib.pyplot as plt  # noqa: E402

from data.demo import DemoSpec, write_demo_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent


def _middle_slice(image_file: Path) -> tuple[dict[str, np.ndarray], str]:
    """(target, zero-filled input) of the file's middle slice, and its contrast name."""
    with h5py.File(image_file, "r") as f:
        middle = f["image_label"].shape[0] // 2
        images = {key: f[key][middle] for key in ("image_label", "image_input")}
        return images, str(f.attrs.get("acquisition", "?"))


def draw(root: Path, acceleration: int, out: Path) -> None:
    """Write the 2 x 2 figure (rows target / zero-filled, columns brain / knee) of ``root`` to ``out``."""
    fig, axes = plt.subplots(2, 2, figsize=(4.4, 4.6), layout="constrained")
    for col, organ in enumerate(("brain", "knee")):
        image_file = sorted((root / "val" / "image").glob(f"{organ}_acc{acceleration}_*.h5"))[0]
        images, contrast = _middle_slice(image_file)
        top = float(images["image_label"].max())
        rows = (("image_label", "target"), ("image_input", f"zero-filled x{acceleration}"))
        for row, (key, label) in enumerate(rows):
            ax = axes[row, col]
            ax.imshow(images[key], cmap="gray", vmin=0.0, vmax=top, interpolation="lanczos")
            ax.set_title(f"{organ} {contrast.upper()}, {label}", fontsize=8)
            ax.set_axis_off()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a demo dataset root (default: simulate the default DemoSpec)")
    parser.add_argument("--acc", type=int, choices=(4, 8), default=4)
    parser.add_argument("--out", type=Path, default=HERE / "demo_slices.png")
    args = parser.parse_args()
    if args.data is not None:
        draw(args.data, args.acc, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            draw(write_demo_dataset(Path(tmp) / "demo", DemoSpec()), args.acc, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
