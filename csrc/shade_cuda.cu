// Placeholder: the CUDA kernel for shade lands here.
