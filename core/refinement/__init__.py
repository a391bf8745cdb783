"""PoseFix-style landmark refinement (DeepMark++ §4.2.2): a second network that looks at the image crop
around one decoded garment plus its landmarks rendered as Gaussians and returns corrected landmarks.

Modules, lowest first: ``crop`` (box → crop affine), ``render`` (landmarks → input heatmaps in group
space), ``errors`` (the detector's measured error statistics and errors synthesised from them),
``samples`` (training samples: the detector's own outputs matched to ground truth), ``runner``
(``Refiner``: inference with onnxruntime, no torch), and the torch side: ``network``, ``config``,
``train``, ``export``.
"""
