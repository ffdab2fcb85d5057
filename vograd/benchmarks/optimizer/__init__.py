"""The cost of one learned-optimizer update against optax.adam (`update`), and where it goes (`profile_step`)."""
