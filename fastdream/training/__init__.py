"""The SDS optimisation: the step (render, guidance, losses), schedules, hooks and the Trainer loop."""
