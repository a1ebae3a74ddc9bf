"""Embedded diffusion priors trained by fastdream itself (builtin:NAME guidance).

shapes: a 32x32 pixel-space text-to-image model of one coloured primitive (fastdream.procedural shapes and colours),
shipped in weights/shapes/. Modules: shapes_data (training data), tokenizer, model (ShapesPrior), train_shapes (CLI).
"""
