"""The vocabulary every other part speaks: the DeepFashion2 taxonomy (categories, landmarks, groupings) and
the typed values passed between parts (Item, Detection, RawHeads, Affine, PostprocessParams)."""
