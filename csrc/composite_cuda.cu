// Placeholder: the CUDA kernel for composite lands here.
