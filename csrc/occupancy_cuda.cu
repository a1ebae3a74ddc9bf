// Placeholder: the CUDA kernel for occupancy lands here.
