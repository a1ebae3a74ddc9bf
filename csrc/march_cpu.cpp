// Placeholder: the CPU kernel for march lands here.
