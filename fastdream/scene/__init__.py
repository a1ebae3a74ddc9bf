"""The scene being optimised: hash-grid encoding, field, occupancy grid, background, and Scene that holds them."""
