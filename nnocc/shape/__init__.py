"""Shapes of one structure (seed 004): an implicit shape model (auto-decoder) fitted to a few labelled
cubes, the samplers that choose those cubes, the reconstruction of whole structures from them, and two
uses in the pipeline: the learned sampler's cubes as training patch centres (training_centres.py) and
the shape model as a prior that repairs predicted structures (repair.py)."""
