// Placeholder: the CPU kernel for composite lands here.
