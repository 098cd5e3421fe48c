"""Anatomy for the demo data: axial brain slices from MNI152 and a coronal knee phantom.

Both return real, non-negative magnitude images of shape (slices, h, w), roughly in [0, 1], that
fill most of an (h, w) field of view with isotropic pixels, in a named contrast (``BRAIN_CONTRASTS``,
``KNEE_CONTRASTS``: the weightings of the fastMRI / SNU scans). Acquisition physics (phase, coils,
noise) is added by ``data.demo.writer``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from scipy import ndimage

# Axial MNI152 slices (1 mm voxels, z index) from the cerebellum's top to the centrum semiovale:
# the part of the brain where a 2-D axial stack looks like the challenge's brain scans.
_Z_RANGE = (55, 126)
MAX_BRAIN_SLICES = _Z_RANGE[1] - _Z_RANGE[0]
_HEAD_MARGIN_MM = 14.0  # CSF, skull and scalp drawn around the skull-stripped template
BRAIN_CONTRASTS = ("t1", "t2", "flair")
KNEE_CONTRASTS = ("pd", "pdfs")


class _Template(NamedTuple):
    t1: np.ndarray  # (z, rows, cols) float32, rows anterior -> posterior, cols patient right -> left
    gm: np.ndarray  # grey-matter probability, same grid
    wm: np.ndarray  # white-matter probability, same grid
    center: np.ndarray  # (2,) in-plane centre of the brain over the whole slab, voxels
    head_size: np.ndarray  # (2,) in-plane extent of the brain plus the drawn head layers, mm


@functools.lru_cache(maxsize=1)
def _mni_template() -> _Template:
    """The mid-brain slab of nilearn's 1 mm MNI152 template, in radiological view."""
    # Imported here: nilearn is slow to import and only the simulator needs it.
    from nilearn.datasets import (
        load_mni152_gm_template,
        load_mni152_template,
        load_mni152_wm_template,
    )

    volumes = []
    for load in (load_mni152_template, load_mni152_gm_template, load_mni152_wm_template):
        data = load(resolution=1).get_fdata(dtype=np.float32)[:, :, slice(*_Z_RANGE)]
        volumes.append(np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0)))
    extent = np.argwhere((volumes[0] > 0.05).any(axis=0))
    low, high = extent.min(0), extent.max(0)
    return _Template(*volumes, center=(low + high) / 2, head_size=high - low + 2 * _HEAD_MARGIN_MM)


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]
) -> np.ndarray:
    """Random smooth field of ``shape``: white noise blurred by ``sigma`` pixels, unit std."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-12)


def _head_layers(inside: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sub-arachnoid CSF, skull (with diploe) and scalp bands outside a brain mask (1 mm pixels)."""
    dist = ndimage.distance_transform_edt(~inside)
    csf_mm, skull_mm, scalp_mm = rng.uniform(1.5, 3.0), rng.uniform(5.0, 7.0), rng.uniform(4.0, 6.0)
    skull_end = csf_mm + skull_mm
    skull = (dist > csf_mm) & (dist <= skull_end)
    return {
        "csf": (dist > 0) & (dist <= csf_mm),
        "skull": skull,
        "diploe": skull & (np.abs(dist - (csf_mm + skull_end) / 2) < skull_mm / 5),
        "scalp": (dist > skull_end) & (dist <= skull_end + scalp_mm),
    }


def brain_slices(
    rng: np.random.Generator, num_slices: int, shape: tuple[int, int], contrast: str
) -> np.ndarray:
    """A stack of ``num_slices`` axial head slices (slices, h, w) in ``contrast``, with a per-call pose.

    "t1" is the template itself; "t2" and "flair" are mixed from the tissue classes (GM / WM maps,
    CSF as the rest of the brain), CSF bright in T2 and suppressed in FLAIR. Tissue weights vary a
    little per call; the pose varies by a small rotation, scale and shift, shared by all slices.
    """
    if not 1 <= num_slices <= MAX_BRAIN_SLICES:
        raise ValueError(f"num_slices must be in [1, {MAX_BRAIN_SLICES}], got {num_slices}")
    if contrast not in BRAIN_CONTRASTS:
        raise ValueError(f"brain contrast must be one of {BRAIN_CONTRASTS}, got {contrast!r}")
    template = _mni_template()
    step = min(5, max(1, (MAX_BRAIN_SLICES - 1) // max(num_slices - 1, 1)))
    first = int(rng.integers(0, MAX_BRAIN_SLICES - step * (num_slices - 1)))

    h, w = shape
    scale = min(0.95 * h / template.head_size[0], 0.95 * w / template.head_size[1])
    scale *= rng.uniform(0.85, 1.0)  # pixels per mm
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    center_out = (np.array(shape) - 1) / 2 + rng.uniform(-0.03, 0.03, 2) * np.array(shape)
    offset = template.center - matrix @ center_out
    # Anti-aliasing before shrinking the 1 mm template onto the coarser grid.
    prefilter_sigma = 0.4 / scale if scale < 1 else 0.0

    # (WM, GM, CSF) weights, and the drawn layers outside the brain (scalp and diploe hold fat).
    if contrast == "t2":
        wm_w, gm_w, csf_w = rng.uniform(0.3, 0.4), rng.uniform(0.55, 0.7), rng.uniform(0.9, 1.0)
        bands = {"csf": csf_w, "skull": 0.03, "diploe": 0.2, "scalp": rng.uniform(0.45, 0.6)}
    elif contrast == "flair":
        wm_w, gm_w, csf_w = rng.uniform(0.45, 0.55), rng.uniform(0.65, 0.8), rng.uniform(0.03, 0.08)
        bands = {"csf": csf_w, "skull": 0.03, "diploe": 0.3, "scalp": rng.uniform(0.55, 0.7)}
    else:
        bands = {"csf": rng.uniform(0.08, 0.15), "skull": 0.03, "diploe": 0.3,
                 "scalp": rng.uniform(0.7, 0.85)}
    gamma = rng.uniform(0.85, 1.15)

    out = np.empty((num_slices, h, w), dtype=np.float32)
    for i in range(num_slices):
        z = first + step * i
        t1, gm, wm = template.t1[z], template.gm[z], template.wm[z]
        # A smooth outline that follows the head, not the gyri.
        inside = ndimage.binary_fill_holes(
            ndimage.gaussian_filter((t1 > 0.05).astype(np.float32), 3.0) > 0.5
        )
        if contrast == "t1":
            image = t1**gamma
        else:
            csf = np.clip(inside - gm - wm, 0.0, 1.0)
            image = (wm_w * wm + gm_w * gm + csf_w * csf) ** gamma
        for name, mask in _head_layers(inside, rng).items():
            image = np.where(mask, bands[name], image)
        image = image * (1 + 0.04 * smooth_noise(rng, image.shape, 1.0))
        if prefilter_sigma:
            image = ndimage.gaussian_filter(image, prefilter_sigma)
        out[i] = ndimage.affine_transform(image, matrix, offset, output_shape=shape, order=1)
    return np.clip(out, 0.0, None)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _round_mask(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Round the corners of a binary mask by blurring and re-thresholding it."""
    return ndimage.gaussian_filter(mask.astype(np.float32), radius_px) > 0.5


# Tissue intensities (proton density, and proton density with fat suppression).
_KNEE_TISSUE = {
    "pd": {"fat": 0.9, "muscle": 0.35, "marrow": 0.75, "cortex": 0.03, "cartilage": 0.55,
           "fluid": 0.7, "meniscus": 0.04, "ligament": 0.12},
    "pdfs": {"fat": 0.12, "muscle": 0.3, "marrow": 0.14, "cortex": 0.03, "cartilage": 0.6,
             "fluid": 1.0, "meniscus": 0.04, "ligament": 0.1},
}


class _KneeShape(NamedTuple):
    """One knee's dimensions, in units of half the field of view's height."""

    cart_t: float  # cartilage thickness
    gap: float  # joint space between the bones (two cartilage layers and a fluid film)
    cond_x: float  # condyle centres at u = +-cond_x
    cond_rx: float
    cond_ry: float
    femur_shaft: float  # half-widths
    plateau_hw: float
    tibia_shaft: float
    fibula_side: float  # -1 or +1


def _knee_shape(rng: np.random.Generator) -> _KneeShape:
    cart_t = rng.uniform(0.025, 0.04)
    cond_x, cond_rx = rng.uniform(0.19, 0.23), rng.uniform(0.19, 0.23)
    return _KneeShape(
        cart_t=cart_t,
        gap=2 * cart_t + rng.uniform(0.008, 0.02),
        cond_x=cond_x,
        cond_rx=cond_rx,
        cond_ry=rng.uniform(0.2, 0.25),
        femur_shaft=rng.uniform(0.15, 0.19),
        plateau_hw=cond_x + cond_rx + rng.uniform(0.0, 0.04),
        tibia_shaft=rng.uniform(0.16, 0.2),
        fibula_side=float(rng.choice([-1.0, 1.0])),
    )


def _knee_regions(u: np.ndarray, v: np.ndarray, z: float, k: _KneeShape, half: float) -> dict:
    """Boolean tissue masks of one coronal slice at depth z in [-0.5, 0.5] (front to back)."""
    shrink = np.sqrt(1 - 0.6 * z**2)  # condyles narrow towards their front and back
    rx, ry = k.cond_rx * shrink, k.cond_ry * shrink
    cy = -k.gap / 2 - ry  # condyle centre row; their lowest points touch the joint space
    condyles = ((np.abs(u) - k.cond_x) / rx) ** 2 + ((v - cy) / ry) ** 2 < 1
    flare = k.femur_shaft + (k.cond_x + 0.9 * rx - k.femur_shaft) * _smoothstep((v - cy + 0.5) / 0.5)
    femur = _round_mask(condyles | ((np.abs(u) < flare) & (v < cy)), 0.02 * half)

    # Slightly concave plateau with the intercondylar eminence in the middle.
    eminence = 0.05 * np.exp(-((u / 0.06) ** 2)) * (1 - abs(z))
    top = k.gap / 2 + 0.04 * (u / k.plateau_hw) ** 2 - eminence
    tibia_hw = k.tibia_shaft + (k.plateau_hw - k.tibia_shaft) * (1 - _smoothstep((v - top) / 0.45))
    tibia = _round_mask((v > top) & (np.abs(u) < tibia_hw), 0.03 * half)
    if z > 0:  # the fibular head sits behind the tibia
        fibula_u = k.fibula_side * (k.plateau_hw - 0.02)
        fibula = ((u - fibula_u) / 0.07) ** 2 + ((v - 0.4) / 0.13) ** 2 < 1
        tibia |= fibula & ~_round_mask(tibia, 0.01 * half)

    bone = femur | tibia
    near_femur = ndimage.distance_transform_edt(~femur) / half < k.cart_t
    near_tibia = ndimage.distance_transform_edt(~tibia) / half < k.cart_t
    cartilage = ~bone & (
        (near_femur & (v > cy))
        | (near_tibia & (v < top + 0.01) & (np.abs(u) < 0.95 * k.plateau_hw))
    )
    joint = ~bone & ~cartilage & (np.abs(v) < k.gap / 2 + 0.05) & (np.abs(u) < k.plateau_hw)
    return {
        "bone": bone,
        "bone_depth": ndimage.distance_transform_edt(bone) / half,
        "cartilage": cartilage,
        "joint": joint,
        # Wedges between the round condyles and the flat plateau, at the joint's margins.
        "meniscus": joint & (np.abs(u) > k.cond_x + 0.5 * k.cond_rx) & (v > -k.gap / 2 - 0.04),
        "notch": ~bone & (np.abs(u) < 0.05) & (v > cy) & (v < -k.gap / 2 - k.cart_t),
    }


def knee_slices(
    rng: np.random.Generator, num_slices: int, shape: tuple[int, int], contrast: str
) -> np.ndarray:
    """A stack of coronal knee-phantom slices (slices, h, w) in ``contrast``, with per-call random anatomy.

    Femur (shaft flaring into two condyles) over the tibial plateau, cartilage on both joint
    surfaces, menisci at the joint margins, cortical rims, fatty marrow with trabecular texture,
    muscle with fibre texture and fat septa, and subcutaneous fat; the slices sweep front to back
    through the condyles. Contrast is proton density ("pd") or fat-suppressed PD ("pdfs").
    """
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    if contrast not in KNEE_CONTRASTS:
        raise ValueError(f"knee contrast must be one of {KNEE_CONTRASTS}, got {contrast!r}")
    h, w = shape
    half = h / 2  # one unit of the phantom's coordinates, in pixels
    v, u = np.meshgrid(
        (np.arange(h) - (h - 1) / 2) / half, (np.arange(w) - (w - 1) / 2) / half, indexing="ij"
    )
    angle = np.deg2rad(rng.uniform(-6.0, 6.0))
    u, v = np.cos(angle) * u - np.sin(angle) * v, np.sin(angle) * u + np.cos(angle) * v
    v = v - rng.uniform(-0.06, 0.1)  # joint line at v = 0

    knee = _knee_shape(rng)
    # Scanners and protocols differ: each tissue's intensity varies a little per scan.
    tissue = {name: value * rng.uniform(0.9, 1.1) for name, value in _KNEE_TISSUE[contrast].items()}
    cortex_t = rng.uniform(0.02, 0.035)
    depths = np.linspace(-1, 1, num_slices) * rng.uniform(0.3, 0.5) if num_slices > 1 else [0.0]

    # Soft tissue is the same in every slice: the leg runs through the whole field of view.
    limb_hw = min(rng.uniform(0.62, 0.74), 0.95 * w / h)
    # Widest at the joint, and the thigh (v < 0) a little wider than the calf.
    limb = (np.abs(u) < limb_hw * (1 + 0.08 * np.exp(-(v**2) / 0.2) - 0.05 * v)) & (np.abs(v) < 0.98)
    septa_field = smooth_noise(rng, shape, (0.1 * half, 0.06 * half))
    septa = np.exp(-((septa_field / 0.05) ** 2))  # thin curves along a level set of the field
    fibres = smooth_noise(rng, shape, (0.12 * half, 0.01 * half))
    soft = (1 - septa) * tissue["muscle"] * (1 + 0.12 * fibres) + septa * tissue["fat"]
    subcutaneous = ndimage.distance_transform_edt(limb) / half < rng.uniform(0.05, 0.09)
    soft = np.where(subcutaneous, tissue["fat"] * (1 + 0.05 * septa_field), soft)
    taper = _smoothstep((0.98 - np.abs(v)) / 0.12)  # fade where the leg leaves the coils' reach

    out = np.empty((num_slices, h, w), dtype=np.float32)
    for i, z in enumerate(depths):
        regions = _knee_regions(u, v, float(z), knee, half)
        trabecular = smooth_noise(rng, shape, 0.015 * half)
        image = np.where(regions["bone"], tissue["marrow"] * (1 + 0.12 * trabecular), soft)
        image = np.where(regions["bone"] & (regions["bone_depth"] < cortex_t), tissue["cortex"], image)
        for name, value in (("joint", "fluid"), ("cartilage", "cartilage"),
                            ("meniscus", "meniscus"), ("notch", "ligament")):
            image = np.where(regions[name], tissue[value], image)
        out[i] = ndimage.gaussian_filter(np.where(limb, image * taper, 0.0), 0.5)
    return np.clip(out, 0.0, None)
