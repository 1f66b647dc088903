"""Domain rules: who may do what to which object. No HTTP, no SQL strings."""
