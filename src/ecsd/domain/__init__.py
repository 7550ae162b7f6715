"""The product's rules: states, validation, the atomic state gate, job steps. No HTTP, no SQL strings."""
