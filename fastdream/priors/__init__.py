"""Embedded diffusion priors trained by fastdream itself (builtin:NAME guidance).

shapes: a 32x32 pixel-space text-to-image model of one coloured primitive (fastdream.procedural shapes and colours),
shipped in weights/shapes/. Modules: shapes_data (training data), tokenizer, model (ShapesPrior), train_shapes (CLI).
shapes-sd: the same task as a latent diffusion model in Stable Diffusion's own diffusers layout (VAE, UNet, CLIP text
encoder and tokenizer, scheduler), shipped in weights/shapes-sd/ and loaded as any SD checkpoint is. Modules:
clip_vocab (its CLIP BPE tokenizer), latent_model (LatentShapesModel), train_shapes_sd (CLI).
"""
