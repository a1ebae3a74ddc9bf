"""Architecture hyper-parameters of Stable Diffusion 2.1-base (public configs), for random-weight timing models.

SD-2.1-base-sized models with random weights cost exactly what the real ones cost, so a step can be timed with no
download. TINY_* are small stand-ins for CPU smoke runs (--quick).
"""
from __future__ import annotations

SD21_BASE_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "only_cross_attention": False,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "dual_cross_attention": False,
    "use_linear_projection": True,
    "upcast_attention": False,
}

SD21_BASE_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

# OpenCLIP ViT-H/14 text tower as shipped with SD 2.x (23 of its 24 layers are used, penultimate-layer features).
SD21_BASE_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 512,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 1.0,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

SD_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "clip_sample": False}

TINY_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "use_linear_projection": True,
}

TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 16,
    "scaling_factor": 0.18215,
}

TINY_TEXT = {
    "vocab_size": 1000,
    "hidden_size": 32,
    "intermediate_size": 37,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

# FLOP of one SDS step at SD 2.1-base size (the generate issue's count): UNet at batch 2 on 64x64 latents, VAE
# encoder forward on 512x512 and its backward to the input.
NOMINAL_STEP_TFLOP = 3.5

# TAESD (madebyollin/taesd, the tiny autoencoder for the SD 1.x/2.x latent space): diffusers' AutoencoderTiny
# defaults, written out.
TAESD = {
    "in_channels": 3,
    "out_channels": 3,
    "encoder_block_out_channels": [64, 64, 64, 64],
    "decoder_block_out_channels": [64, 64, 64, 64],
    "act_fn": "relu",
    "latent_channels": 4,
    "upsampling_scaling_factor": 2,
    "num_encoder_blocks": [1, 3, 3, 3],
    "num_decoder_blocks": [3, 3, 3, 1],
    "latent_magnitude": 3,
    "latent_shift": 0.5,
    "scaling_factor": 1.0,
}

TINY_TAESD = {**TAESD, "encoder_block_out_channels": [8, 8], "decoder_block_out_channels": [8, 8],
              "num_encoder_blocks": [1, 1], "num_decoder_blocks": [1, 1]}
