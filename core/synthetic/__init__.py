"""Synthetic DeepFashion2-format datasets: rendered garments with boxes, landmarks and segmentation.

Each garment is its category's canonical landmark template (``Category.template``, x multiplied by
``template_aspect``) put through a random smooth non-rigid deformation (sleeve swing, anisotropic
scale and shear, a few low-frequency displacement waves), scaled, slightly rotated and placed in the
image. Its silhouette is built from the category's skeleton links, which trace the garment contour:
the bounded faces of that planar graph are filled (small faces, like the strip between the back neck
and the front neckline, are drawn darker as the garment's inside), and links that bound no face (sling
straps, the back collar of an open jacket) are drawn as bands. Every landmark is a vertex of that
outline, so landmark ``i`` always sits at the same semantic place of the drawn shape. The contour edges
are densified and bent by the same smooth deformation, so outlines are gently curved.

Garments are drawn back to front over a random textured background with non-garment clutter; each is
filled with a random pattern (solid, stripes, checks, dots, heather, gradient, camouflage, twill) and
shading, with a dark outline and seams and a soft drop shadow. Labels follow DeepFashion2: ``v = 2``
visible, ``v = 1`` covered by a garment drawn later (in front), ``v = 0`` outside the image (stored as
0, 0, 0). Boxes are the tight box of the garment's in-image region (occluded parts included); the
segmentation is the outer contour(s) of its visible (unoccluded, in-image) region. Placements that
would cover more than ``SynthConfig.max_covered`` of an earlier garment are rejected.

Coordinates are image pixels with pixel centres at integer values (OpenCV's drawing convention).
Everything is deterministic for a seed: image ``i`` of a dataset uses only ``default_rng([seed, i])``.

Modules: ``config`` (SynthConfig, SynthError), ``shapes`` (garment outlines from the taxonomy and
their random deformation), ``placement`` (placing and rasterising garments under the occlusion and
truncation constraints), ``paint`` (colours, textures, backgrounds, clutter, drawing), ``scene``
(render_scene and the DeepFashion2 labels of its garments) and ``dataset`` (files on disk).
"""

from deepmark.core.synthetic.config import SynthConfig, SynthError
from deepmark.core.synthetic.dataset import annotation_dict, generate_dataset, scene_rng, write_example
from deepmark.core.synthetic.scene import SynthItem, render_scene
from deepmark.core.synthetic.shapes import _shape as _shape  # re-exported for tests

__all__ = [
    "SynthConfig",
    "SynthError",
    "SynthItem",
    "annotation_dict",
    "generate_dataset",
    "render_scene",
    "scene_rng",
    "write_example",
]
