// Placeholder: the CPU kernel for shade lands here.
