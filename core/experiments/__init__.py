"""Experiments that run the whole pipeline (detector, decoder, refinement, evaluator) to reproduce the
paper's tables on our data."""
