// Placeholder: the CPU kernel for occupancy lands here.
