"""Volume rendering of ray batches and images through interchangeable backends (fastdream, torch, nerfacc)."""
