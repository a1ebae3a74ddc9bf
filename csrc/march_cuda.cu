// Placeholder: the CUDA kernel for march lands here.
